from . import auth, conversations, health, messages, models, tools


def register_blueprints(api):
    for module in (auth, conversations, health, messages, models, tools):
        api.register_blueprint(module.blp)

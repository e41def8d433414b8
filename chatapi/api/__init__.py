from . import auth, conversations, health, messages, tools


def register_blueprints(api):
    for module in (auth, conversations, health, messages, tools):
        api.register_blueprint(module.blp)

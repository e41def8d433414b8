from . import auth, conversations, health, messages, models, tools, usage


def register_blueprints(api):
    for module in (auth, conversations, health, messages, models, tools, usage):
        api.register_blueprint(module.blp)

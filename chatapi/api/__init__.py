from . import auth, conversations, health, tools


def register_blueprints(api):
    for module in (auth, conversations, health, tools):
        api.register_blueprint(module.blp)

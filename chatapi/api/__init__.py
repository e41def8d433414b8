from . import auth, conversations, health


def register_blueprints(api):
    for module in (auth, conversations, health):
        api.register_blueprint(module.blp)

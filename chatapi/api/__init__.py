from . import auth, health


def register_blueprints(api):
    for module in (auth, health):
        api.register_blueprint(module.blp)

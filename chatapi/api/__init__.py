from . import auth, conversations, health, messages, models, search, tools, transfer, usage


def register_blueprints(api):
    for module in (auth, conversations, health, messages, models, search, tools, transfer,
                   usage):
        api.register_blueprint(module.blp)

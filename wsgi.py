from chatapi import create_app

app = create_app()

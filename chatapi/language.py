"""The language of a request's texts, decided from its Accept-Language by the API layer (the
views and the error handler) and passed down as an argument: services, models and tools never
read the request (a stream's reader greenlet has none)."""
from flask import request

from .texts import DEFAULT_LANGUAGE, LANGUAGES


def request_language():
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)

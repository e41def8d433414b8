"""weather tools: current_weather and weather_forecast, on Open-Meteo (geocoding for city
names, then the forecast API), fetched through the network guard. The base URLs are the
operator's settings, never the caller's: their own host and port are trusted, and nothing
else (a redirect elsewhere is checked as any fetch is)."""
import math
import time
from operator import itemgetter
from urllib.parse import urlencode

from .. import strict_json
from ..errors import ApiError, UpstreamError, ValidationFailed
from . import netguard
from .tool import Tool
from .wmo_codes import describe

MAX_RESPONSE_BYTES = 1_000_000

CURRENT_VARIABLES = {
    "temperature": "temperature_2m",
    "apparent_temperature": "apparent_temperature",
    "humidity": "relative_humidity_2m",
    "wind_speed": "wind_speed_10m",
    "wind_direction": "wind_direction_10m",
    "precipitation": "precipitation",
    "weather_code": "weather_code",
}
DAILY_VARIABLES = {
    "weather_code": "weather_code",
    "temperature_max": "temperature_2m_max",
    "temperature_min": "temperature_2m_min",
    "precipitation_sum": "precipitation_sum",
    "precipitation_probability": "precipitation_probability_max",
    "wind_speed_max": "wind_speed_10m_max",
}
UNIT_PARAMETERS = {
    "metric": {},
    "imperial": {"temperature_unit": "fahrenheit", "wind_speed_unit": "mph",
                 "precipitation_unit": "inch"},
}
UNIT_LABELS = {
    "metric": {"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm"},
    "imperial": {"temperature": "°F", "wind_speed": "mph", "precipitation": "inch"},
}
SHARED_LABELS = {"humidity": "%", "wind_direction": "°", "precipitation_probability": "%"}


def current_weather(arguments, context):
    deadline = time.monotonic() + context.config["WEATHER_TIMEOUT"]
    location = located(arguments, context, deadline)
    forecast = forecast_for(location, arguments["units"], {
        "current": ",".join(CURRENT_VARIABLES.values())}, context, deadline)
    try:
        now = forecast["current"]
        current = {"time": now["time"],
                   **{name: now.get(variable) for name, variable in CURRENT_VARIABLES.items()}}
    except (KeyError, TypeError):
        raise unexpected_answer("forecast") from None
    current["description"] = describe(current["weather_code"], context.language)
    return {"location": with_timezone(location, forecast), "current": current,
            "units": units_of(arguments["units"])}


def weather_forecast(arguments, context):
    deadline = time.monotonic() + context.config["WEATHER_TIMEOUT"]
    location = located(arguments, context, deadline)
    forecast = forecast_for(location, arguments["units"], {
        "daily": ",".join(DAILY_VARIABLES.values()), "forecast_days": arguments["days"]},
        context, deadline)
    try:
        series = forecast["daily"]
        daily = [{"date": day, **{name: series[variable][index]
                                  for name, variable in DAILY_VARIABLES.items()}}
                 for index, day in enumerate(series["time"])]
    except (KeyError, TypeError, IndexError):
        raise unexpected_answer("forecast") from None
    for day in daily:
        day["description"] = describe(day["weather_code"], context.language)
    return {"location": with_timezone(location, forecast), "daily": daily,
            "units": units_of(arguments["units"])}


def located(arguments, context, deadline):
    """The place asked for: a city name looked up by geocoding, or coordinates as given."""
    city = arguments.get("city", "").strip() or None
    latitude, longitude = arguments.get("latitude"), arguments.get("longitude")
    if city is not None and (latitude is not None or longitude is not None):
        raise ValidationFailed(details={"city": ["give a city or coordinates, not both"]})
    if city is None:
        if latitude is None and longitude is None:
            raise ValidationFailed(details={"city": ["give a city, or latitude and longitude"]})
        if latitude is None or longitude is None:
            missing = "latitude" if latitude is None else "longitude"
            raise ValidationFailed(details={missing: ["give latitude and longitude together"]})
        if not (math.isfinite(latitude) and math.isfinite(longitude)):
            raise ValidationFailed(details={"latitude": ["must be finite numbers"]})
        return {"name": None, "country": None, "admin1": None, "latitude": latitude,
                "longitude": longitude}
    answer = fetched(context.config["OPEN_METEO_GEOCODING_URL"], "/search", {
        "name": city, "count": 1, "language": context.language, "format": "json"},
        context.config, deadline, "geocoding")
    if not answer.get("results"):
        raise ValidationFailed("city_not_found", details={"city": [f"no city named '{city}'"]})
    try:
        place = answer["results"][0]
        return {"name": place["name"], "country": place.get("country"),
                "admin1": place.get("admin1"), "latitude": place["latitude"],
                "longitude": place["longitude"]}
    except (KeyError, TypeError):
        raise unexpected_answer("geocoding") from None


def forecast_for(location, units, variables, context, deadline):
    return fetched(context.config["OPEN_METEO_BASE_URL"], "/forecast", {
        "latitude": location["latitude"], "longitude": location["longitude"], **variables,
        "timezone": "auto", **UNIT_PARAMETERS[units]}, context.config, deadline, "forecast")


def with_timezone(location, forecast):
    return {**location, "timezone": forecast.get("timezone")}


def units_of(units):
    return {**UNIT_LABELS[units], **SHARED_LABELS}


def fetched(base_url, path, parameters, config, deadline, service):
    """The JSON object Open-Meteo answers, within the deadline and MAX_RESPONSE_BYTES. Every
    failure is Open-Meteo's (502, or 504 past the deadline) and names the service."""
    try:
        page = netguard.fetch(f"{base_url}{path}?{urlencode(parameters)}", config=config,
                              max_bytes=MAX_RESPONSE_BYTES, timeout=netguard.remaining(deadline),
                              trusted=(base_url,))
    except ValidationFailed as refused:
        # A base URL that is no http(s) URL, or a redirect to an address the guard refuses:
        # what the operator configured failed, not what the caller asked.
        raise UpstreamError(details={"service": service,
                                     "reason": refused.details["url"][0]}) from None
    except ApiError as failed:
        failed.details = {"service": service, **(failed.details or {})}
        raise
    if page.truncated:
        raise UpstreamError(details={"service": service, "reason": "answer too large"})
    try:
        # Strict: a NaN temperature would reach the client as a token no JSON parser reads.
        answer = strict_json.loads(page.body.decode("utf-8"))
    except (ValueError, RecursionError):
        answer = None
    if page.status != 200:
        reason = answer.get("reason") if isinstance(answer, dict) else None
        raise UpstreamError(details={"service": service, "status": page.status,
                                     **({"reason": str(reason)} if reason else {})})
    if not isinstance(answer, dict):
        raise unexpected_answer(service)
    return answer


def unexpected_answer(service):
    return UpstreamError(details={"service": service, "reason": "unexpected answer"})


LOCATION_PROPERTIES = {
    "city": {"type": "string", "minLength": 1, "maxLength": 100,
             "description": "a city name alone, e.g. \"Berlin\" or \"北京\" (not \"Berlin, "
                            "Germany\"); or give latitude and longitude instead"},
    "latitude": {"type": "number", "minimum": -90, "maximum": 90,
                 "description": "degrees north, with longitude, instead of city"},
    "longitude": {"type": "number", "minimum": -180, "maximum": 180,
                  "description": "degrees east, with latitude, instead of city"},
    "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric",
              "description": "metric (°C, km/h, mm) or imperial (°F, mph, inch)"},
}

CURRENT_WEATHER = Tool(
    name="current_weather",
    category="weather",
    description=(
        "Current weather for a city or coordinates (Open-Meteo): temperature, apparent "
        "temperature, humidity, wind speed and direction, precipitation, and a description."),
    parameters={"type": "object", "properties": LOCATION_PROPERTIES},
    handler=current_weather,
    time_limit=itemgetter("WEATHER_TIMEOUT"),
)

WEATHER_FORECAST = Tool(
    name="weather_forecast",
    category="weather",
    description=(
        "Daily weather forecast for 1 to 16 days for a city or coordinates (Open-Meteo): "
        "per day a description, highest and lowest temperature, precipitation total and "
        "probability, and highest wind speed."),
    parameters={"type": "object", "properties": {
        **LOCATION_PROPERTIES,
        "days": {"type": "integer", "minimum": 1, "maximum": 16, "default": 7,
                 "description": "how many days, today first"},
    }},
    handler=weather_forecast,
    time_limit=itemgetter("WEATHER_TIMEOUT"),
)

TOOLS = [CURRENT_WEATHER, WEATHER_FORECAST]

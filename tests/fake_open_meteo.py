"""A fake Open-Meteo on 127.0.0.1: `/v1/search` (geocoding) and `/v1/forecast` answering
in the real response shapes, built from the query they receive. It records every query,
and each path can be told to answer a 500, a 400 with a reason, garbage, an endless body, a
redirect, or to stall until the fake is closed."""
import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

BERLIN = {"id": 2950159, "latitude": 52.52437, "longitude": 13.41053, "elevation": 74.0,
          "feature_code": "PPLC", "country_code": "DE", "admin1_id": 2950157,
          "timezone": "Europe/Berlin", "population": 3426354, "country_id": 2921044}
BEIJING = {"id": 1816670, "latitude": 39.9075, "longitude": 116.39723, "elevation": 49.0,
           "feature_code": "PPLC", "country_code": "CN", "admin1_id": 2038349,
           "timezone": "Asia/Shanghai", "population": 11716620, "country_id": 1814991}
# (name, country, admin1) in each language, by every name a caller may search with.
PLACES = {
    "berlin": (BERLIN, {"en": ("Berlin", "Germany", "Land Berlin"), "zh": ("柏林", "德国", "柏林")}),
    "beijing": (BEIJING, {"en": ("Beijing", "China", "Beijing"), "zh": ("北京", "中国", "北京市")}),
}
PLACES["柏林"] = PLACES["berlin"]
PLACES["北京"] = PLACES["beijing"]

START = date(2025, 1, 15)
DAILY_CODES = [0, 3, 61, 95, 71, 45, 80]
METRIC_UNITS = {"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm"}
IMPERIAL_UNITS = {"temperature": "°F", "wind_speed": "mp/h", "precipitation": "inch"}


def geocoding(query):
    place = PLACES.get(query.get("name", "").lower())
    if place is None:
        return {"generationtime_ms": 0.4}
    fields, names = place
    name, country, admin1 = names.get(query.get("language", "en"), names["en"])
    return {"results": [{**fields, "name": name, "country": country, "admin1": admin1}],
            "generationtime_ms": 0.7}


def forecast(query):
    latitude, longitude = float(query["latitude"]), float(query["longitude"])
    imperial = query.get("temperature_unit") == "fahrenheit"
    labels = IMPERIAL_UNITS if imperial else METRIC_UNITS
    answer = {"latitude": round(latitude, 2), "longitude": round(longitude, 2),
              "generationtime_ms": 0.05, "utc_offset_seconds": 3600,
              "timezone": "Asia/Shanghai" if longitude > 60 else "Europe/Berlin",
              "timezone_abbreviation": "GMT+1", "elevation": 38.0}
    if "current" in query:
        variables = query["current"].split(",")
        current = current_values(imperial)
        answer["current_units"] = {"time": "iso8601", "interval": "seconds",
                                   **{name: unit_of(name, labels) for name in variables}}
        answer["current"] = {"time": f"{START.isoformat()}T14:00", "interval": 900,
                             **{name: current[name] for name in variables}}
    if "daily" in query:
        variables = query["daily"].split(",")
        days = int(query.get("forecast_days", 7))
        answer["daily_units"] = {"time": "iso8601",
                                 **{name: unit_of(name, labels) for name in variables}}
        answer["daily"] = {"time": [(START + timedelta(days=n)).isoformat() for n in range(days)],
                           **{name: [daily_value(name, n, imperial) for n in range(days)]
                              for name in variables}}
    return answer


def current_values(imperial):
    return {"temperature_2m": fahrenheit(3.2) if imperial else 3.2,
            "relative_humidity_2m": 81,
            "apparent_temperature": fahrenheit(-0.4) if imperial else -0.4,
            "weather_code": 61,
            "wind_speed_10m": 7.5 if imperial else 12.1,
            "wind_direction_10m": 240,
            "precipitation": 0.01 if imperial else 0.3}


def daily_value(name, day, imperial):
    celsius = {"temperature_2m_max": 5.0 + day, "temperature_2m_min": -2.0 + day}
    if name in celsius:
        return fahrenheit(celsius[name]) if imperial else celsius[name]
    return {"weather_code": DAILY_CODES[day % len(DAILY_CODES)],
            "precipitation_sum": 0.04 * day if imperial else 1.0 * day,
            "precipitation_probability_max": 10 * (day % 10),
            "wind_speed_10m_max": 9.9 if imperial else 16.0}[name]


def fahrenheit(celsius):
    return round(celsius * 9 / 5 + 32, 1)


def unit_of(variable, labels):
    if variable == "weather_code":
        return "wmo code"
    if variable.startswith(("relative_humidity", "precipitation_probability")):
        return "%"
    if variable.startswith("wind_direction"):
        return "°"
    for kind in ("temperature", "wind_speed", "precipitation"):
        if kind in variable:
            return labels[kind]
    return ""


ANSWERS = {"/v1/search": geocoding, "/v1/forecast": forecast}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        fake = self.server.fake
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        fake.queries.append((url.path, query))
        behaviour = fake.behaviours.get(url.path, "ok")
        if url.path not in ANSWERS:
            return self.answer(404, b'{"error": true, "reason": "Not Found"}')
        if behaviour == "stall":
            fake.released.wait()
            return None
        if behaviour == "error":
            return self.answer(500, b'{"error": true, "reason": "Internal Server Error"}')
        if behaviour == "bad_request":
            return self.answer(400, b'{"error": true, "reason": "Latitude must be in range"}')
        if behaviour == "garbage":
            return self.answer(200, b"<html>upstream proxy says hello</html>")
        if behaviour == "endless":
            return self.endless()
        if behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", fake.locations[url.path])
            self.send_header("Content-Length", "0")
            return self.end_headers()
        return self.answer(200, json.dumps(ANSWERS[url.path](query)).encode())

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def endless(self):
        """A JSON array that never ends, until the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[")
        try:
            while not self.server.fake.released.is_set():
                self.wfile.write(b"0," * 32 * 1024)
        except OSError:
            pass

    def log_message(self, *_args):
        pass


class FakeOpenMeteo:
    """`with FakeOpenMeteo() as fake:` serves on fake.url; base URLs are f"{fake.url}/v1"."""

    def __init__(self):
        self.queries = []
        self.behaviours = {}
        self.locations = {}
        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the serving loop to look.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    def behave(self, path, behaviour, location=None):
        """`location`: where "redirect" sends the client."""
        self.behaviours[path] = behaviour
        self.locations[path] = location

    def queries_to(self, path):
        return [query for requested, query in self.queries if requested == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

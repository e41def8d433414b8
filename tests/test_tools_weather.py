"""current_weather and weather_forecast against a fake Open-Meteo on 127.0.0.1."""
import time

import pytest

from tests.fake_open_meteo import FakeOpenMeteo
from tests.local_sites import counting_listener


@pytest.fixture
def make_weather_client(make_app, open_meteo):
    def make(**config):
        app = make_app(OPEN_METEO_BASE_URL=f"{open_meteo.url}/v1",
                       OPEN_METEO_GEOCODING_URL=f"{open_meteo.url}/v1", **config)
        return app.test_client()
    return make


@pytest.fixture
def weather(make_weather_client, auth_headers):
    client = make_weather_client()

    def call(tool, arguments, language=None):
        headers = {**auth_headers, **({"Accept-Language": language} if language else {})}
        return client.post(f"/api/tools/{tool}/execute", json=arguments, headers=headers)
    return call


def test_current_weather_for_a_city_geocodes_then_asks_for_the_current_variables(
        weather, open_meteo):
    response = weather("current_weather", {"city": "Berlin"})

    assert response.status_code == 200
    result = response.get_json()["data"]["result"]
    assert result["location"] == {"name": "柏林", "country": "德国", "admin1": "柏林",
                                  "latitude": 52.52437, "longitude": 13.41053,
                                  "timezone": "Europe/Berlin"}
    assert result["current"] == {
        "time": "2025-01-15T14:00", "temperature": 3.2, "apparent_temperature": -0.4,
        "humidity": 81, "wind_speed": 12.1, "wind_direction": 240, "precipitation": 0.3,
        "weather_code": 61, "description": "小雨"}
    assert result["units"] == {"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm",
                               "humidity": "%", "wind_direction": "°",
                               "precipitation_probability": "%"}
    assert open_meteo.queries_to("/v1/search") == [
        {"name": "Berlin", "count": "1", "language": "zh", "format": "json"}]
    assert open_meteo.queries_to("/v1/forecast") == [{
        "latitude": "52.52437", "longitude": "13.41053", "timezone": "auto",
        "current": "temperature_2m,apparent_temperature,relative_humidity_2m,wind_speed_10m,"
                   "wind_direction_10m,precipitation,weather_code"}]


def test_english_callers_get_english_place_names_and_descriptions(weather, open_meteo):
    response = weather("current_weather", {"city": "北京"}, language="en-US,en;q=0.9")

    result = response.get_json()["data"]["result"]
    assert result["location"]["name"] == "Beijing"
    assert result["location"]["timezone"] == "Asia/Shanghai"
    assert result["current"]["description"] == "Slight rain"
    assert open_meteo.queries_to("/v1/search")[0]["language"] == "en"


def test_coordinates_skip_geocoding(weather, open_meteo):
    response = weather("current_weather", {"latitude": 48.85, "longitude": 2.35})

    assert response.status_code == 200
    location = response.get_json()["data"]["result"]["location"]
    assert location == {"name": None, "country": None, "admin1": None, "latitude": 48.85,
                        "longitude": 2.35, "timezone": "Europe/Berlin"}
    assert open_meteo.queries_to("/v1/search") == []
    assert open_meteo.queries_to("/v1/forecast")[0]["latitude"] == "48.85"


def test_forecast_returns_one_entry_per_requested_day_with_descriptions(weather, open_meteo):
    response = weather("weather_forecast", {"city": "Berlin", "days": 3})

    assert response.status_code == 200
    daily = response.get_json()["data"]["result"]["daily"]
    assert [day["date"] for day in daily] == ["2025-01-15", "2025-01-16", "2025-01-17"]
    assert daily[2] == {"date": "2025-01-17", "weather_code": 61, "description": "小雨",
                        "temperature_max": 7.0, "temperature_min": 0.0,
                        "precipitation_sum": 2.0, "precipitation_probability": 20,
                        "wind_speed_max": 16.0}
    sent = open_meteo.queries_to("/v1/forecast")[0]
    assert sent["forecast_days"] == "3"
    assert sent["daily"] == ("weather_code,temperature_2m_max,temperature_2m_min,"
                             "precipitation_sum,precipitation_probability_max,"
                             "wind_speed_10m_max")
    assert "current" not in sent


def test_forecast_defaults_to_seven_days(weather, open_meteo):
    response = weather("weather_forecast", {"latitude": 52.5, "longitude": 13.4})

    assert len(response.get_json()["data"]["result"]["daily"]) == 7
    assert open_meteo.queries_to("/v1/forecast")[0]["forecast_days"] == "7"


def test_imperial_units_ask_open_meteo_for_fahrenheit_mph_and_inches(weather, open_meteo):
    response = weather("current_weather", {"city": "Berlin", "units": "imperial"})

    result = response.get_json()["data"]["result"]
    assert result["current"]["temperature"] == 37.8
    assert result["units"]["temperature"] == "°F"
    assert result["units"]["wind_speed"] == "mph"
    sent = open_meteo.queries_to("/v1/forecast")[0]
    assert (sent["temperature_unit"], sent["wind_speed_unit"], sent["precipitation_unit"]) == (
        "fahrenheit", "mph", "inch")


def test_metric_requests_leave_open_meteo_defaults(weather, open_meteo):
    weather("weather_forecast", {"city": "Berlin", "units": "metric"})

    sent = open_meteo.queries_to("/v1/forecast")[0]
    assert not {"temperature_unit", "wind_speed_unit", "precipitation_unit"} & set(sent)


def test_unknown_city_is_a_validation_error_naming_the_city(weather, open_meteo):
    response = weather("current_weather", {"city": "Atlantis"}, language="en")

    assert response.status_code == 422
    body = response.get_json()
    assert body["message"] == "City not found"
    assert body["error"]["code"] == "validation_error"
    assert "Atlantis" in body["error"]["details"]["city"][0]
    assert open_meteo.queries_to("/v1/forecast") == []


def test_unknown_city_message_is_chinese_by_default(weather):
    assert weather("weather_forecast", {"city": "Atlantis"}).get_json()["message"] == "未找到该城市"


@pytest.mark.parametrize("arguments, field", [
    ({}, "city"),
    ({"units": "metric"}, "city"),
    ({"city": "Berlin", "latitude": 1, "longitude": 2}, "city"),
    ({"latitude": 52.5}, "longitude"),
    ({"longitude": 13.4}, "latitude"),
])
def test_neither_or_both_location_forms_are_refused(weather, open_meteo, arguments, field):
    response = weather("current_weather", arguments)

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert open_meteo.queries == []


@pytest.mark.parametrize("arguments, field", [
    ({"latitude": 91, "longitude": 0}, "latitude"),
    ({"latitude": 0, "longitude": -180.5}, "longitude"),
    ({"city": "Berlin", "days": 17}, "days"),
    ({"city": "Berlin", "days": 0}, "days"),
    ({"city": "Berlin", "units": "kelvin"}, "units"),
    ({"city": ""}, "city"),
])
def test_out_of_range_arguments_are_refused_before_any_request(weather, open_meteo, arguments,
                                                               field):
    response = weather("weather_forecast", arguments)

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert open_meteo.queries == []


@pytest.mark.parametrize("path", ["/v1/search", "/v1/forecast"])
def test_upstream_server_error_is_502(weather, open_meteo, path):
    open_meteo.behave(path, "error")

    response = weather("current_weather", {"city": "Berlin"})

    assert response.status_code == 502
    body = response.get_json()
    assert body["error"]["code"] == "upstream_error"
    assert body["error"]["details"]["status"] == 500


def test_upstream_refusal_is_502_with_its_reason(weather, open_meteo):
    open_meteo.behave("/v1/forecast", "bad_request")

    response = weather("weather_forecast", {"latitude": 1, "longitude": 2})

    assert response.status_code == 502
    assert response.get_json()["error"]["details"]["reason"] == "Latitude must be in range"


@pytest.mark.parametrize("path", ["/v1/search", "/v1/forecast"])
def test_garbage_from_upstream_is_502(weather, open_meteo, path):
    open_meteo.behave(path, "garbage")

    response = weather("weather_forecast", {"city": "Berlin"})

    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "upstream_error"


def test_stalled_upstream_is_a_504_after_the_configured_timeout(
        make_weather_client, auth_headers, open_meteo):
    client = make_weather_client(WEATHER_TIMEOUT=0.3)
    open_meteo.behave("/v1/forecast", "stall")

    started = time.perf_counter()
    response = client.post("/api/tools/current_weather/execute",
                           json={"city": "Berlin"}, headers=auth_headers)

    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"
    # The fake stalls until it is closed: under 10 s is the timeout at work.
    assert 0.25 < time.perf_counter() - started < 10


def test_unreachable_upstream_is_502(make_app, auth_headers):
    with FakeOpenMeteo() as gone:
        url = f"{gone.url}/v1"
    client = make_app(OPEN_METEO_BASE_URL=url, OPEN_METEO_GEOCODING_URL=url).test_client()

    response = client.post("/api/tools/current_weather/execute",
                           json={"latitude": 1, "longitude": 2}, headers=auth_headers)

    assert response.status_code == 502
    assert response.get_json()["error"]["details"] == {"service": "forecast",
                                                       "reason": "ConnectionError"}


def test_an_answer_over_the_cap_is_502_and_its_reading_stops(weather, open_meteo):
    open_meteo.behave("/v1/forecast", "endless")

    response = weather("current_weather", {"latitude": 1, "longitude": 2})

    assert response.status_code == 502
    assert response.get_json()["error"]["details"] == {"service": "forecast",
                                                       "reason": "answer too large"}


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/v1/forecast",
                                    "http://localhost:{port}/v1/forecast"])
def test_a_redirect_from_open_meteo_to_a_private_address_is_refused_without_connecting(
        weather, open_meteo, target):
    with counting_listener() as counter:
        open_meteo.behave("/v1/forecast", "redirect", target.format(port=counter.port))

        response = weather("current_weather", {"latitude": 1, "longitude": 2},
                           language="en")

        assert response.status_code == 502
        body = response.get_json()
        assert body["error"]["code"] == "upstream_error"
        assert body["error"]["details"]["service"] == "forecast"
        assert "refused" in body["error"]["details"]["reason"]
        assert counter.connections == 0


def test_trusting_the_open_meteo_base_urls_lets_no_caller_fetch_them(
        make_weather_client, auth_headers, open_meteo):
    client = make_weather_client()

    response = client.post("/api/tools/fetch_webpage/execute",
                           json={"url": f"{open_meteo.url}/v1/search?name=Berlin"},
                           headers=auth_headers)

    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["url"]
    assert open_meteo.queries == []


def test_weather_tools_are_listed_in_their_category(weather, client, auth_headers):
    response = client.get("/api/tools/?category=weather", headers=auth_headers)

    names = [tool["name"] for tool in response.get_json()["data"]["tools"]]
    assert names == ["current_weather", "weather_forecast"]

"""WMO weather interpretation codes (WW) as Open-Meteo reports them, in Chinese and English."""
WMO_CODES = {
    0: ("晴", "Clear sky"),
    1: ("大部晴朗", "Mainly clear"),
    2: ("局部多云", "Partly cloudy"),
    3: ("阴", "Overcast"),
    45: ("雾", "Fog"),
    48: ("雾凇", "Depositing rime fog"),
    51: ("小毛毛雨", "Light drizzle"),
    53: ("中毛毛雨", "Moderate drizzle"),
    55: ("大毛毛雨", "Dense drizzle"),
    56: ("小冻毛毛雨", "Light freezing drizzle"),
    57: ("大冻毛毛雨", "Dense freezing drizzle"),
    61: ("小雨", "Slight rain"),
    63: ("中雨", "Moderate rain"),
    65: ("大雨", "Heavy rain"),
    66: ("小冻雨", "Light freezing rain"),
    67: ("大冻雨", "Heavy freezing rain"),
    71: ("小雪", "Slight snowfall"),
    73: ("中雪", "Moderate snowfall"),
    75: ("大雪", "Heavy snowfall"),
    77: ("米雪", "Snow grains"),
    80: ("小阵雨", "Slight rain showers"),
    81: ("中阵雨", "Moderate rain showers"),
    82: ("强阵雨", "Violent rain showers"),
    85: ("小阵雪", "Slight snow showers"),
    86: ("大阵雪", "Heavy snow showers"),
    95: ("雷暴", "Thunderstorm"),
    96: ("雷暴伴小冰雹", "Thunderstorm with slight hail"),
    99: ("雷暴伴大冰雹", "Thunderstorm with heavy hail"),
}


def describe(code, language):
    zh, en = WMO_CODES.get(code, ("未知天气", "Unknown weather"))
    return en if language == "en" else zh

"""Word pools the families draw names, keys and values from.

Chosen to share nothing with the task suite (its people, companies, cities, tickers,
file names and codenames), so the data teaches skills rather than the suite's answers;
`tests/evals/test_synth.py` checks that no generated file, name or instruction collides.
"""

from __future__ import annotations

import random

__all__ = [
    "HANDLES", "SERVICES", "NOUNS", "CITIES", "PRODUCTS", "TOPICS", "SKU_PREFIXES",
    "REGIONS", "FIRST_NAMES", "TRADES", "TEAMS", "pick", "sample", "ident", "firm",
]

HANDLES = [
    "okoro", "mbeck", "tsilva", "hwatanabe", "rpatel", "dnovak", "alindqvist", "cferreira",
    "yhassan", "kowalczyk", "bmensah", "ejung", "fdubois", "gkaur", "ivolkova", "lrossi",
    "nabara", "pquinn", "sbrandt", "vmorales", "zkiplagat", "uachebe", "wtanaka", "jhalvorsen",
]
FIRST_NAMES = [
    "Amara", "Bogdan", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hamid", "Ilse", "Jonas",
    "Keiko", "Lucia", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Thandi",
    "Ulla", "Viktor", "Wanjiru", "Yusuf", "Zofia",
]
SERVICES = [
    "thumbnailer", "indexer", "mailer", "scheduler", "gateway", "ingest", "reporting", "notifier",
    "uploader", "resizer", "exporter", "webhookd", "billing", "catalog", "ledger", "search",
]
NOUNS = [
    "harbor", "quill", "meadow", "orbit", "lantern", "cobalt", "juniper", "basalt", "tundra",
    "mosaic", "prism", "delta", "ember", "glacier", "saffron", "timber", "velvet", "zephyr",
    "canyon", "pebble", "marble", "copper", "fennel", "island",
]
CITIES = [
    "Accra", "Bergen", "Cusco", "Dakar", "Gdansk", "Hanoi", "Izmir", "Krakow", "Lima", "Medellin",
    "Nagoya", "Porto", "Quito", "Rosario", "Seville", "Tbilisi", "Utrecht", "Valparaiso",
    "Windhoek", "Yerevan", "Zagreb", "Antwerp", "Bilbao", "Chiang Mai", "Durban", "Fez",
]
PRODUCTS = [
    "desk lamp", "canvas tote", "steel bottle", "wool scarf", "phone stand", "notebook",
    "ceramic mug", "bike light", "yoga mat", "travel adapter", "gel pen", "cork board",
]
TOPICS = [
    "rate limiting", "timezone handling", "retry backoff", "image cropping", "unicode filenames",
    "cache invalidation", "leap years", "currency rounding", "pagination cursor", "login throttling",
    "CSV escaping", "memory leak", "thread pool size", "locale sorting", "duplicate emails",
]
SKU_PREFIXES = ["QX", "LM", "RT", "VB", "ZN", "HP", "WK", "DF"]
REGIONS = ["north", "south", "east", "west", "central", "coastal", "highland", "valley"]
TRADES = ["Looms", "Ceramics", "Cartage", "Apiaries", "Print Co", "Robotics", "Orchards", "Brewing",
          "Joinery", "Optics", "Foundry", "Seeds"]
TEAMS = ["payments", "identity", "storage", "mobile", "data-platform", "support-tools", "growth", "infra"]


def pick(rng: random.Random, pool: list[str]) -> str:
    return pool[rng.randrange(len(pool))]


def sample(rng: random.Random, pool: list[str], k: int) -> list[str]:
    return rng.sample(pool, k)


def ident(rng: random.Random, prefix: str, digits: int = 4) -> str:
    """A made-up identifier such as 'QX-4821'."""
    return f"{prefix}-{rng.randrange(10 ** (digits - 1), 10 ** digits)}"


def firm(rng: random.Random) -> str:
    """A made-up business name such as 'Juniper Looms'."""
    return f"{pick(rng, NOUNS).capitalize()} {pick(rng, TRADES)}"

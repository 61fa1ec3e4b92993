"""Container names: Docker's rule for valid names, and random `adjective_surname` names like Docker's."""

from __future__ import annotations

import random
import re

from berth.errors import InvalidArgument

_VALID = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_LEFT = ("admiring", "adoring", "affectionate", "amazing", "awesome", "blissful", "bold", "brave", "charming",
         "clever", "cool", "compassionate", "competent", "confident", "dazzling", "determined", "eager", "ecstatic",
         "elastic", "elegant", "epic", "focused", "friendly", "gallant", "gifted", "goofy", "gracious", "happy",
         "hopeful", "inspiring", "jolly", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest",
         "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "practical", "priceless",
         "quirky", "relaxed", "romantic", "serene", "sharp", "silly", "sleepy", "stoic", "sweet", "tender",
         "trusting", "upbeat", "vibrant", "vigilant", "wizardly", "wonderful", "youthful", "zealous", "zen")
_RIGHT = ("albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bell", "bhabha", "blackwell", "bohr",
          "booth", "borg", "bose", "brahmagupta", "brown", "carson", "cerf", "chandrasekhar", "clarke", "curie",
          "darwin", "dijkstra", "einstein", "euclid", "euler", "fermat", "feynman", "franklin", "galileo", "gauss",
          "goldberg", "goodall", "hamilton", "hawking", "heisenberg", "hopper", "hypatia", "jemison", "johnson",
          "kepler", "knuth", "lamport", "leakey", "lovelace", "mccarthy", "meitner", "mendel", "noether", "pascal",
          "pike", "poincare", "ritchie", "shannon", "sinoussi", "tesla", "thompson", "torvalds", "turing", "wilson",
          "wozniak", "yalow")


def check_name(name: str) -> str:
    """A valid container name without its leading slash."""
    if not _VALID.fullmatch(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def random_name(taken: set[str], rng: random.Random | None = None) -> str:
    r = rng or random.SystemRandom()
    for attempt in range(100):
        name = f"{r.choice(_LEFT)}_{r.choice(_RIGHT)}" + (str(r.randint(0, 9)) if attempt > 10 else "")
        if name not in taken:
            return name
    raise InvalidArgument("could not pick a free random container name; give one with --name")

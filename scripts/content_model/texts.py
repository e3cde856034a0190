"""Sentences for training data, written here: a small grammar over our own word lists.

Deterministic for a seed. None of the development set's sentences can come out of it (the
generator checks), and its vocabulary covers every English phone of the CMU set.
"""
from __future__ import annotations

import random

NOUNS = """apple arm baby bag ball bank bed bell bird boat body bone book boot bottle box boy
branch bridge brush bucket button cake camera candle cap car card carpet cart cat chain chair
cheese chicken child church circle cloud coat coin comb cow cup curtain cushion dog door drawer
dress drum ear egg engine eye face farm feather finger fish flag floor flower fly foot fork
frog garden girl glove goat gold grain grass guitar hammer hand hat head heart hook horn horse
house island jelly jewel judge kettle key king kitten knee knife knot lamp leg letter library
lion lip lock map match monkey moon mother mountain mouse mouth nail neck needle nest nose nurse
oil onion orange oven owl page pail parcel pen pencil picture pig pin pipe plane plate plough
pocket potato prison pump queen rabbit rail rat ring river road rod roof room root rope sail
saucer school scissors screw seed sheep shelf ship shirt shoe sister skin skirt snake sock spade
sponge spoon spring square stamp star station stick stocking stomach store street sun table tail
thread throat thumb ticket toe tongue tooth town train tray tree trousers truck umbrella valley
village violin voice wagon wall watch wheel whip whistle window wing wire worm garage treasure
measure leisure vision television beige pleasure toy boy coin noise voyage oyster joy""".split()
ADJS = """angry bad beautiful big bitter black blue bright broad broken brown cheap clean clear
cold cool cruel dark dear deep different dirty dry early easy elastic electric empty equal false
fat feeble flat foolish free fresh full general good gray great green happy hard healthy heavy
high hollow hot important kind large late left light little long loud low male married medical
military mixed narrow natural new nice noisy normal old open orange parallel past physical pink
plain polite poor possible present private public purple quick quiet rare ready red regular
rich right rough round royal sad safe same secret serious sharp short shy simple slow small
smooth soft solid special sticky stiff straight strange strong sudden sweet tall thick thin
tired true violent warm wet white whole wide wise wrong yellow young usual""".split()
VERBS = """asks brings builds buys calls carries catches changes chooses cleans climbs closes
collects cooks counts covers cuts draws drinks drives drops eats fills finds fixes follows
gathers gives grabs grows hangs hears helps hides holds hugs joins jumps keeps kicks kisses
knocks lifts likes loves makes measures moves needs opens paints passes pays picks plays pulls
pushes reaches reads rings rolls saves sees sells sends shakes shares shows sings sits smells
throws touches turns visits wants washes watches wears wins wraps writes enjoys avoids""".split()
PLACES = """near the gate|behind the house|under the bridge|on the hill|in the kitchen|by the
window|at the station|across the road|inside the box|beside the river|through the woods|around
the corner|over the fence|in the morning|after lunch|before dawn|during the storm|at noon|on
Sunday|in June|every evening|at the party|in the garden|by the shore""".replace("\n", " ").split("|")
NAMES = """Anna Ben Carlos Dora Ethan Fiona George Hannah Ivan Julia Kevin Laura Martin Nora
Oscar Paula Ruth Simon Tina Victor Walter Yvonne Zoe Peter Judy""".split()
NUMS = "two three four five six eight ten eleven twelve thirty forty hundred".split()
ADVS = "slowly quickly gently loudly quietly carefully often never always sometimes rarely".split()
DETS = ["the", "a", "my", "your", "his", "her", "our", "their", "this", "that", "one old", "every"]
QUEST = ["Why does", "When does", "Where does", "How often does", "Does"]
BASE = {v: (v[:-3] + "y" if v.endswith("ies") else v[:-2] if v.endswith(("shes", "ches", "xes", "sses"))
            else v[:-1]) for v in VERBS}


IRREGULAR = {"foot", "tooth", "mouse", "knife", "child", "sheep", "fish", "scissors", "trousers",
             "leisure", "shelf", "potato"}
PLURAL = [n for n in NOUNS if n not in IRREGULAR and not n.endswith(("s", "x", "ch", "sh", "y"))]


def _np(r: random.Random) -> str:
    parts = [r.choice(DETS)]
    if r.random() < 0.6:
        parts.append(r.choice(ADJS))
    parts.append(r.choice(NOUNS))
    return " ".join(parts)


def sentence(r: random.Random) -> str:
    kind = r.random()
    subj = r.choice(NAMES) if r.random() < 0.4 else _np(r)
    if kind < 0.5:
        s = f"{subj} {r.choice(VERBS)} {_np(r)} {r.choice(PLACES)}"
    elif kind < 0.65:
        s = f"{subj} {r.choice(ADVS)} {r.choice(VERBS)} {r.choice(NUMS)} {r.choice(ADJS)} {r.choice(PLURAL)}s"
    elif kind < 0.8:
        s = f"{r.choice(QUEST)} {subj.lower() if subj[0].islower() else subj} {BASE[r.choice(VERBS)]} {_np(r)}"
    elif kind < 0.9:
        s = f"{_np(r)} and {_np(r)} are {r.choice(ADJS)} {r.choice(PLACES)}"
    else:
        s = f"{subj} {r.choice(VERBS)} {_np(r)} and {r.choice(VERBS)} {_np(r)}"
    s = s[0].upper() + s[1:]
    return s + ("?" if kind >= 0.65 and kind < 0.8 else ".")


def sentences(n: int, seed: int, forbidden: set[str] = frozenset()) -> list[str]:
    """``n`` sentences for ``seed``, none of them in ``forbidden`` (compared lower-case)."""
    r = random.Random(seed)
    out = []
    while len(out) < n:
        s = sentence(r)
        if s.lower() not in forbidden:
            out.append(s)
    return out


def vocabulary() -> set[str]:
    words = set(NOUNS + ADJS + VERBS + NUMS + ADVS + list(BASE.values()) + [n.lower() for n in NAMES])
    for group in (PLACES, DETS, QUEST):
        for p in group:
            words.update(p.lower().split())
    words.update({"and", "are"}, {p + "s" for p in PLURAL})
    return words

"""Small embedded English word lists for synthetic keys and word-frequency tasks.

RULER and LongChat-Lines draw keys from wonderwords' lists; embedding a few hundred common words
here avoids a dependency (and RULER's use of a private wonderwords API). When a task needs more
distinct words than the lists hold, `pseudo_words` adds pronounceable made-up words.
"""

from __future__ import annotations

import random

ADJECTIVES: tuple[str, ...] = tuple(
    """
able absent active afraid agile alert ancient angry annual anxious aware awful basic bitter
blank bold boring brave brief bright broad broken busy calm careful casual cheap cheerful
chilly civil clean clever close cloudy clumsy coastal cold common cozy crazy crisp cruel
curious damp dark dear deep dense direct dirty distant dizzy dry dull dusty eager early easy
elegant empty equal exact fair faint false famous fancy fast fierce final fine firm flat fond
foolish formal fresh friendly frozen funny gentle giant glad global golden good grand grateful
great green grumpy guilty handy happy hard harsh hasty healthy heavy helpful hidden high hollow
honest hot huge humble hungry icy idle jolly juicy keen kind large late lazy legal light likely
little lively local lonely long loose loud lovely loyal lucky mad main major mellow mighty mild
minor modern modest moody muddy narrow nasty native neat nervous new nice noble noisy normal
odd old open orange plain pleasant polite poor popular proud pure purple quick quiet rapid rare
raw ready real red rich rigid ripe rough round royal rude rural rusty sad safe salty sandy sharp
shiny short shy silent silly simple sleepy slim slow small smart smooth soft solid sour spare
spicy steady steep sticky stiff stormy strange strict strong sturdy subtle sudden sunny super
sweet swift tall tame tender thick thin tidy tiny tired tough tricky true ugly upset urban
useful vague valid vast vivid warm weak wealthy weary wet white whole wicked wide wild windy
wise witty wooden young zealous
""".split()
)

NOUNS: tuple[str, ...] = tuple(
    """
actor airport album anchor animal apple arrow artist attic autumn badge bakery balcony balloon
banana bandit banker barrel basket beach beacon bear beaver bell bicycle bishop blanket
blossom boat bottle boulder bracelet branch bread breeze brick bridge brother bucket buffalo
builder bullet butter button cabin cable cactus camel camera campus canal candle canyon captain
carpet carrot castle cattle cellar chair chapel cheese cherry chicken chimney circus citizen
classmate cliff clock closet cloud coach coast coffee collar comet cottage cotton council
cousin cradle crater crayon cricket crown cupboard curtain cushion dancer desert diamond doctor
dolphin donkey dragon drawer dream drum eagle editor elbow elephant engine envelope falcon
farmer feather fence ferry fiddle finger forest fountain fox garden garlic giraffe glacier
glove goat guitar hammer harbor harvest helmet hermit highway hill honey horizon horse hunter
island jacket jaguar jewel journal jungle kettle kid kingdom kitchen kitten ladder lake lantern
lawyer leopard letter library lighthouse lion lizard lobster locket magnet mango marble market
meadow melon merchant meteor mirror monkey mountain muffin museum needle nephew nest novel
ocean office olive onion orchard otter owl oyster painter palace panda parrot peach pebble
pencil pepper piano pigeon pillow pilot pirate planet pocket poet pond potato prairie puppet
pyramid quarry rabbit radio rainbow raven ribbon river robot rocket saddle sailor salmon
sandal saucer scholar scissors sculptor senator shadow shelf shepherd ship shovel singer
sister skeleton sled snail soldier spider spoon squirrel stable statue stove student sunset
surgeon swan sword tailor teacher temple tiger tomato tower tractor trumpet tulip tunnel
turtle uncle valley vessel village violin volcano wagon walnut warrior waterfall weaver whale
whistle widow window wizard wolf yacht zebra
""".split()
)

VERBS: tuple[str, ...] = tuple(
    """
accept admire advise allow answer arrive bake balance begin borrow bounce breathe build carry
catch change chase cheer climb collect count cover crawl dance deliver destroy divide drift
dream earn enjoy escape explain explore fetch finish float follow gather glow grab greet grow
guard guess hammer handle harvest heal hover hunt imagine invent juggle jump kneel knock laugh
launch learn listen march mend mix nod notice obey offer open paint pause plant play polish
pour pray push quarrel question race reach repair rescue return ride roar rush sail scatter
search settle shiver sing skip sleep smile sneeze spark spill squeeze stare steer stretch
swim tickle travel trust tumble unlock vanish visit wander wash whisper wink wonder worry
wrestle yawn yell zoom
""".split()
)

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "k", "l", "m", "n", "p", "pl", "r", "s", "st", "t", "tr", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "n", "r", "l", "s", "m", "k")


def all_words() -> list[str]:
    """Every embedded word once, in a fixed order."""
    return list(dict.fromkeys(ADJECTIVES + NOUNS + VERBS))


def pseudo_words(count: int, rng: random.Random, exclude: set[str] | frozenset = frozenset()) -> list[str]:
    """`count` distinct pronounceable made-up words (2-3 syllables) not in `exclude`."""
    seen = set(exclude)
    out: list[str] = []
    while len(out) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3)))
        word += rng.choice(_CODAS)
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out

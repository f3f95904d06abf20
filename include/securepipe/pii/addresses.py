"""Street addresses in free text, in the formats of many countries.

Threat model: an address is a direct identifier, and it is written differently in
every country: "150 Anthony Plains, Glendale, VA 04307", "Hahnstr. 40, 44965
Prenzlau", "7, boulevard Paulette Gosselin, 01812 Menton", "Flat 5, 12 Marsh Walk,
Leeds LS1 4DY", "Kerkstraat 12, 1234 AB Amsterdam", "Unit 5/12 Smith St, Sydney NSW
2000". A parser trained on one country's format (usaddress) misses the others, so an
address is assembled here from parts that each have a recognizable shape:

- street lines: a house number with street words ending in a street type ("12 Birchwood
  Lane"), a house number before a street type ("7, rue de la Paix"), or a street word
  with a German/Dutch/Nordic suffix followed by a house number ("Karl-Marx-Str. 3");
- postcodes with their city or state: US state + ZIP, UK, Canadian, Irish, Dutch and
  Australian postcodes, five- and four-digit postcodes with a place name;
- secondary units (Flat, Apt, Suite, Studio, Wohnung...), PO boxes, military mail;
- a segment that a note announces as an address ("lives at ...", "Adresse : ...").

Parts next to each other (separated by commas, slashes, line breaks, or by the
capitalized words of a town or county) are merged into one span. A span needs one
strong part (a numbered street line, a postcode, a PO box, an announced segment); weak
parts (a street name without a number, a unit, a four-digit number with a word after
it) only extend one. Recall comes first: a span may take in a neighbouring word.
"""
from __future__ import annotations

import re
from functools import lru_cache

from securepipe.pii.lexicon import LOWER, NAME_WORD, UPPER
from securepipe.pii.recognizers import ADDRESS, Span

_ORDINAL = r"\d{1,3}(?:st|nd|rd|th|e|er|ème)"
HOUSE_NUMBER = r"\d{1,5}(?:[A-Za-z](?![\w]))?(?:\s?[-/]\s?\d{1,5}[A-Za-z]?)?"
# A word of a street name: capitalized with lower-case letters (an all-capitals word in a note written
# in capitals is not taken for a street), no sentence-ending dot.
_STREET_WORD = rf"[{UPPER}](?:[{LOWER}]|['’][{UPPER}])[{LOWER}{UPPER}'’]*(?:-[{UPPER}{LOWER}][{LOWER}{UPPER}'’]*)*"
_PARTICLES = (r"(?:de\s+la|de\s+l['’]|de|du|des|d['’]|la|le|les|l['’]|aux?|à\s+la|en|sur|sous|lès|di|del|della|dei|"
              r"degli|delle|da|dos|das|do|van|von|der|den|het|ten|ter|am|an|im|in|bei|vor|vorm|unter|of|on|upon|the|"
              r"and|y|e)")

# Street types written after the name (US/UK/CA/IE/AU usage), singular; plurals are allowed.
_POST_TYPES = """
alley ally aly annex anex anx arcade arc avenue ave av bayou byu beach bch bend bnd bluff blf bottom btm boulevard
blvd bvd branch bridge brg brook brk burg bypass byp canyon cyn cpe causeway cswy center ctr centre circle cir
circuit cct cl close cliff clf clb cmn commons copse corner crse court ct cove creek crk crescent cres crest crst
croft crossing xing crossroad xrd curve curv dale dam divide drive dr dve drove esplanade esp estate expressway
expy extension falls fls ferry field fld flat flt ford forest frst frg frk fort ft freeway fwy garden gdn gardens
gdns garth gate gateway gtwy glade glen gln green grn grove grv gully harbor harbour hbr haven hvn heights hts
highway hwy hill hollow holw inlet inlt island isle junction jct knoll knl lake lk landing lndg lane ln lgt lck
lodge ldg manor mnr meadow mdw mews mill msn motorway mtwy mount mountain mtn nck orchard orch oval overpass opas
paddock parade pde park parkway pkwy passage psge pathway pne place pl plain pln plaza plz point port prt prairie
promenade quay quays radl ranch rnch rpd rst retreat ridge rdg rise river riv road rd route rte shoal shl shore shr
skyway skwy spinney spg square sq strand stravenue stra strm street st str smt terrace ter terr throughway trwy
trce trak trafficway trfy trail trl trailer trlr tunnel tunl turnpike tpke underpass upas vale valley vly viaduct
via vw village vlg ville vista walk way wy wharf wynd yard boardwalk amble brace nook villas approach circus
embankment broadway chase tér utca u. út körút straße strasse str. weg allee platz gasse ring damm ufer chaussee
pfad steig
""".split()
# Street types written before the name (French, Italian, Spanish, Portuguese usage).
_PRE_TYPES = """
rue avenue av boulevard bd bld chemin ch allée allee impasse imp place pl quai route rte cours voie square sq
rond-point passage faubourg fbg chaussée chaussee sentier hameau résidence residence lieu-dit parvis esplanade
promenade montée montee côte cote traverse cité cite villa lotissement domaine ruelle carrefour rampe galerie mail
clos viale piazza piazzale corso largo vicolo strada borgo contrada incrocio rotonda calle avenida plaza paseo
carrer rua travessa praça praca estrada camino carretera ronda cuesta vial pasadizo pasaje callejón callejon glorieta
travesía travesia rambla alameda urbanización urbanizacion urb. avda. rúa travessera utca u. út tér körút krt. ul. ulica al. aleja plac os.
trg cesta iela tänav sokak sk. cad. cadde odos leof.
""".split()
# German, Dutch and Nordic street names end in these.
_SUFFIXES = """
straße strasse str. str stra weg allee ring platz gasse gässchen damm ufer chaussee pfad steig stieg berg hof graben
markt brücke tor kamp wall anger zeile promenade park siedlung feld höhe grund garten winkel blick bogen steg
straat laan plein gracht kade dijk singel steeg pad dreef plantsoen baan wal burgwal gatan vägen gata vej gade veien
gränd vegen vegur straeti stræde tie katu kuja polku tänav maantee puiestee iela gatvė utca ulica ulice cesta trg
náměstí namesti třída trida sokak sokağı caddesi cadde bulvarı odos
""".split()
_DE_STARTS = (r"(?:Am|An\s+der|An\s+den|Auf\s+der|Auf\s+dem|Im|In\s+der|In\s+den|Zum|Zur|Unter\s+den|Hinter\s+der|"
              r"Vor\s+dem|Alte|Alter|Altes|Neue|Neuer|Neues|Große|Großer|Kleine|Kleiner|Lange|Langer|Obere|Untere)")
_UNITS = (r"(?:Flat|Apartment|Apt|Unit|Suite|Ste|Studio|Room|Rm|Floor|Fl|Level|Lvl|Building|Bldg|Block|Blk|Lot|Shop|"
          r"Office|Wohnung|Whg|Etage|Stock|Top|Stiege|Bâtiment|Batiment|Bât|Bat|Appartement|Appt|Escalier|Esc|Porte|"
          r"Appartamento|Interno|Int|Scala|Piano|Puerta|Piso|Planta|Bus|Boîte|Boite)")
_US_STATES = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
              "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP AA AE AP").split()
_CA_PROVINCES = "AB BC MB NB NL NS NT NU ON PE QC SK YT".split()
_AU_STATES = "NSW VIC QLD WA SA TAS ACT NT".split()


def _words(words) -> str:
    """An alternation of the words, without their abbreviation dots (the patterns allow one)."""
    return "|".join(sorted({re.escape(w.rstrip(".")) for w in words}, key=len, reverse=True))


_POST = rf"(?i:(?:{_words(_POST_TYPES)})s?)\b\.?"
# "Via" only capitalized: "via" is also an English word ("3L via NC").
# "C/" and "Av/" (calle, avenida) end in a slash, so no word boundary follows them.
_PRE = rf"(?:(?:(?i:{_words(_PRE_TYPES)})|Via)\b\.?|(?:C|Av)/)"
# Street types written in lower case after the name ("Erzsébet tér 19", "Kálmán Imre u. 12").
_LOWER_POST = frozenset({"tér", "utca", "u", "út", "körút", "krt", "ul", "ulica", "trg", "cesta", "iela", "tänav"})
_CITY = rf"{NAME_WORD}(?:(?:\s+|-)(?:{NAME_WORD}|{_PARTICLES}(?=\s*[-\s]\s*[{UPPER}])|\([{UPPER}][\w\s.]{{1,20}}\))){{0,4}}"
_STREET_NAME = rf"(?:{NAME_WORD}|{_ORDINAL}|{_PARTICLES})"

# (pattern, strong, needs): strong parts make an address on their own; weak ones only extend one. `needs` names
# the street-word family a text must contain for the pattern to be tried at all (see `_families`).
_PARTS = (
    # 12 Birchwood Lane, 4273 Main Dr NW, 66/9 Maynard Copse, 1600 N. Pennsylvania Avenue
    (rf"(?<![\w.,/-]){HOUSE_NUMBER},?\s+(?:[NSEW]\.?\s+|(?:North|South|East|West)\s+)?(?:{_STREET_WORD}|{_ORDINAL})"
     rf"(?:\s+(?:{_STREET_WORD}|{_ORDINAL}|{_PARTICLES})){{0,3}}\s+{_POST}(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?", True,
     "post"),
    # 7, boulevard Paulette Gosselin; 12 bis rue de la Paix; Vicolo Sgalambro, 59; rue de Gubéran 279
    (rf"(?<![\w.,/-]){HOUSE_NUMBER}(?:\s?(?:bis|ter|quater)\b)?,?\s+{_PRE}(?:\s+{_STREET_NAME}){{1,6}}", True, "pre"),
    (rf"(?<![\w-]){_PRE}(?:\s+{_STREET_NAME}){{1,6}},?\s+{HOUSE_NUMBER}(?![\w/-]|[.,]\d)", True, "pre"),
    # Villacher Strasse 89, Erzsébet tér 19, Kálmán Imre u. 12
    (rf"(?<![\w-]){NAME_WORD}(?:\s+{NAME_WORD}){{0,2}}\s+{_POST}\s*{HOUSE_NUMBER}(?![\w/-]|[.,]\d)", True, "post"),
    # Hahnstr. 4087, Herma-Matthäi-Ring 19, Wolf-Dietrich-Henk-Allee 7-3, Kerkstraat 12, Am Markt 5
    (rf"(?<![\w-])(?:{NAME_WORD}[\s-]){{0,3}}[{UPPER}][\w'’-]*?(?i:{_words(_SUFFIXES)})\b\.?\s*{HOUSE_NUMBER}"
     rf"(?![\w/-]|[.,]\d)", True, "suffix"),
    (rf"\b{_DE_STARTS}\s+{NAME_WORD}(?:[\s-]{NAME_WORD}){{0,2}}\s+{HOUSE_NUMBER}(?![\w/-]|[.,]\d)", True, None),
    # PO boxes and military mail
    (r"\b(?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box|Postfach|Bo[iî]te\s+[Pp]ostale|GPO\s+Box|Locked\s+Bag|"
     r"Private\s+Bag)\s+\d{1,6}\b", True, None),
    (r"\b(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{1,5}\b", True, None),
    (rf"\b(?:USNS|USS|USCGC)\s+{NAME_WORD}(?:\s+{NAME_WORD}){{0,2}}\b", False, None),
    (r"\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b", True, None),
    # US: Kimberlyview, NJ 78456 / Austin TX 77853-1234
    (rf"\b(?:{'|'.join(_US_STATES)}),?\s+\d{{5}}(?:-\d{{4}})?\b", True, None),
    # Canada: North Cassidyton, NS Y4L1X5
    (rf"\b(?:(?:{'|'.join(_CA_PROVINCES)}),?\s+)?[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\s?\d"
     rf"[ABCEGHJ-NPRSTV-Z]\d\b", True, None),
    # UK: W88 6FJ, SW1A 1AA (and the town before it)
    (rf"\b(?:GIR\s?0AA|[A-Z]{{1,2}}\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{{2}})\b", True, None),
    # Ireland: Eircode, "Dublin 8"
    # (written with its space, or with a letter in the second half: "A000001" is an identifier)
    (r"\b(?:[AC-FHKNPRTV-Y]\d{2}|D6W)(?:\s[0-9AC-FHKNPRTV-Y]{4}|(?=[0-9]*[AC-FHKNPRTV-Y])[0-9AC-FHKNPRTV-Y]{4})\b",
     True, None),
    (r"\bDublin\s+(?:[1-9]|1\d|2[0-4]|6W)\b", False, None),
    # Australia: Sydney NSW 2000 / Connorberg, WA, 2674
    (rf"\b(?:{'|'.join(_AU_STATES)}),?\s+\d{{4}}\b", True, None),
    # Netherlands: 1012 TX Amsterdam
    (rf"(?<![\w-])\d{{4}}\s?(?!SS|SD|SA)[A-Z]{{2}},?\s+{_CITY}", True, None),
    (r"(?<![\w-])\d{4}\s?(?!SS|SD|SA)[A-Z]{2}\b", False, None),
    # Five-digit postcodes with a place (DE, FR, IT, ES, US...): 44965 Prenzlau, F-75002 Paris, 30010, Campagna Lupia
    (rf"(?<![\w.,/-])(?:[A-Z]{{1,2}}-)?\d{{5}},?\s+{_CITY}(?:\s+CEDEX(?:\s+\d{{1,2}})?)?", True, None),
    # Four-digit postcodes with a place (AT, CH, BE, DK, NO, AU): 5833 Saalfelden am Steinernen Meer
    (rf"(?<![\w.,/-])(?:(?:A|CH|B|D|DK|N|L)-)\d{{4}}\s+{_CITY}", True, None),
    (rf"(?<![\w.,/-])\d{{4}}\s+{_CITY}", False, None),
    # a street word and a house number in any language ("Puruntie 82", "Brisas 6802"), a place and a
    # trailing postcode ("Domoszló Hungary 34796"): only next to other parts
    (rf"(?<![\w-])[{UPPER}][{LOWER}]{{2,}}[\w'’-]*[ \t]+\d{{1,4}}[a-z]?\b\.?(?![\w/-]|[.,]\d)", False, None),
    (rf"(?<![\w-])[{UPPER}][\w'’-]{{2,}}[ \t]+\d{{4,6}}\b(?![\w/-]|[.,]\d)", False, None),
    # Flat 5 / Studio 01k / Apt. 290 / Suite 102 / Wohnung 3
    (rf"\b{_UNITS}\.?\s*#?\s*[A-Za-z]?\d{{1,5}}[A-Za-z]?\b", False, None),
    # a street line without its number: Josh Tunnel, rue Pires (only next to a strong part)
    (rf"\b{NAME_WORD}(?:\s+{NAME_WORD}){{0,2}}\s+{_POST}", False, "post"),
    (rf"\b{_PRE}(?:\s+{_STREET_NAME}){{1,5}}", False, "pre"),
    (rf"(?<![\w-])(?:{NAME_WORD}[\s-]){{0,3}}[{UPPER}][\w'’-]*?(?i:{_words(_SUFFIXES)})\b\.?", False, "suffix"),
)

# A note that announces an address: the rest of the clause is the address.
_ANNOUNCED = re.compile(
    r"(?i:\b(?:lives|living|resides|residing|residence|resident|moved|relocated|domiciled|staying)\s+(?:at|in)|"
    r"\b(?:home|mailing|postal|street|billing|current|new|permanent)?\s*address(?:e)?\s*(?:is|:|-)|"
    r"\baddress\s+(?:on\s+file|of\s+record)\s*(?:is|:)?|wohnhaft\s+in|wohnt\s+in|wohnort\s*:|anschrift\s*:|"
    r"domicili[ée]e?\s+(?:au|à|a)|demeurant\s+(?:au|à|a)|habite\s+(?:au|à|a)|adresse\s*:|domicilio\s*:|"
    r"direcci[óo]n\s*:|reside\s+en|vive\s+en)\s*"
)
_CLAUSE_END = re.compile(r"\.\s+(?=[A-Z])|[;\n(]|\.$|\s(?:and|but|with|since|for|who|which|where|when|until|und|et|mais|"
                         r"seit|bis|depuis|jusqu['’]?\w*)\s")
_LEADING_ARTICLE = re.compile(r"(?:(?:the|a|an|der|die|das|dem|den|le|la|les|l['’]|au|aux|du|de|el|il)\s+)+")
_MAX_ANNOUNCED = 120
# What may lie between two parts of one address.
_GAP = re.compile(rf"\.?(?:\s*[,/\n>|]\s*|\s+|\s*-\s*)(?:(?:{NAME_WORD}|{_PARTICLES}|\d{{1,5}})(?:\s*[,/\n>|]\s*|\s+))"
                  rf"{{0,5}}")  # ">" and "|": quoted e-mail lines, table cells
_MAX_GAP = 60


@lru_cache(maxsize=1)
def _parts():
    return [(re.compile(pattern), strong, needs) for pattern, strong, needs in _PARTS]


_POST_SET = frozenset(t.rstrip(".") for t in _POST_TYPES)
_PRE_SET = frozenset(t.rstrip(".") for t in _PRE_TYPES)
_SUFFIX_TUPLE = tuple(suffix.rstrip(".") for suffix in _SUFFIXES)
_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def _families(text: str) -> set:
    """Which street-word families occur in the text: most texts hold none, and then the
    patterns that need them are not run."""
    words = set(_WORD.findall(text))
    # Street types and German/Dutch street names are capitalized in addresses ("Main Street",
    # "Hahnstr."): lower-case "way" or "well" in prose does not count.
    capitalized = {w.lower() for w in words if w[0].isupper()}
    families = {None}
    if any(w in _POST_SET or (w.endswith("s") and w[:-1] in _POST_SET) for w in capitalized) or \
            any(w.lower() in _LOWER_POST for w in words):
        families.add("post")
    if {w.lower() for w in words} & _PRE_SET or "Via" in words or "C/" in text or "Av/" in text:
        families.add("pre")
    if any(w.endswith(_SUFFIX_TUPLE) for w in capitalized):
        families.add("suffix")
    return families


# A street corner names a place without a house number ("at the corner of Main St and Elm Ave").
_CORNER = re.compile(rf"\b(?:[Cc]orner|[Ii]ntersection|[Jj]unction)\s+of\s+((?:{NAME_WORD}|\d{{1,5}}|{_PARTICLES})"
                     rf"(?:[ \t]+(?:{NAME_WORD}|\d{{1,5}}\.?|{_PARTICLES}|str|and|&)){{1,10}})")


def _announced(text: str) -> list[tuple[int, int, bool]]:
    parts = [(m.start(1), m.end(1), True) for m in _CORNER.finditer(text) if re.search(r"\s(?:and|&)\s", m.group(1))]
    for match in _ANNOUNCED.finditer(text):
        start = match.end()
        article = _LEADING_ARTICLE.match(text, start)
        start = article.end() if article else start
        window = text[start:start + _MAX_ANNOUNCED]
        stop = _CLAUSE_END.search(window)
        segment = window[:stop.start()] if stop else window
        segment = segment.rstrip(" ,.:")
        # An announced address holds a number (house number, postcode) and a capitalized word.
        if re.search(r"\d", segment) and re.search(rf"[{UPPER}]", segment):
            parts.append((start, start + len(segment), True))
    return parts


_TOWN_BEFORE = re.compile(rf"(?:{_CITY})[ \t]*,?[ \t]*$")
_NUMBER_BEFORE = re.compile(r"(?<![\w.,/-])\d{1,6}[ \t]+$")


def _extend_back(text: str, start: int) -> int:
    """Take in the town written before a postcode or state ("Kimberlyview, NJ 78456"), or a
    building or postcode number written before a street ("28245 Puruntie 82")."""
    match = _TOWN_BEFORE.search(text, max(0, start - 60), start) or _NUMBER_BEFORE.search(text, max(0, start - 8), start)
    return match.start() if match else start


def address_spans(text: str) -> list[Span]:
    """The addresses in `text`, one span each (parts merged), sorted by start."""
    families = _families(text)
    found = [(m.start(), m.end(), True) for pattern, strong, needs in _parts() if strong and needs in families
             for m in pattern.finditer(text)]
    found += _announced(text)
    found += [(m.start(), m.end(), False) for pattern, strong, needs in _parts() if not strong and needs in families
              for m in pattern.finditer(text)]
    if not found:
        return []
    found = sorted(set(found))
    groups: list[list] = []
    for start, end, strong in found:
        if groups:
            last = groups[-1]
            gap = text[last[1]:start]
            if start <= last[1] or (len(gap) <= _MAX_GAP and _GAP.fullmatch(gap)):
                last[1] = max(last[1], end)
                last[2] = last[2] or strong
                last[3] += 1
                continue
        groups.append([start, end, strong, 1])
    spans = []
    for start, end, strong, parts in groups:
        # Weak parts alone make an address only when there are two and a number among them.
        if strong or parts >= 2 and any(ch.isdigit() for ch in text[start:end]):
            start = _extend_back(text, start)
            while end > start and text[end - 1] in " ,.-/\n":
                end -= 1
            spans.append(Span(start, end, ADDRESS, 0.85 if strong else 0.6))
    return spans

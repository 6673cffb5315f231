"""Which words carry no clinical fact: dictionaries made by others, and short reviewed lists.

A word is *narrative* (may be passed over) when the general British English dictionary
(Debian's hunspell-en-gb) has it, the English medical dictionary (hunspell-en-med,
OpenMedSpel) has neither it nor its stem in British or American spelling, and lexicon.toml
does not list it as loaded or as a cue. Without the dictionaries nothing is narrative, so
every unlisted word makes its entry uncertain: less is omitted, never more.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEXICON_FILE = Path(__file__).with_name("lexicon.toml")
DICTIONARY_FOLDERS = (Path("/usr/share/hunspell"), Path("/usr/share/myspell/dicts"))
ENGLISH = "en_GB"
MEDICAL = "en_med_glut"  # an affix-less word list meant to be used with en_US's affix rules
# British spellings the (American) medical dictionary writes otherwise: tumour, oedema, haem-.
_US_SPELLINGS = ((re.compile(r"our\b"), "or"), (re.compile(r"ae"), "e"), (re.compile(r"oe"), "e"),
                 (re.compile(r"is(e|ed|es|ing)\b"), r"iz\1"), (re.compile(r"tre\b"), "ter"),
                 (re.compile(r"ys(e|ed|es|ing)\b"), r"yz\1"))


class LexiconError(ValueError):
    """lexicon.toml is malformed; the message names the section."""


def _words(text: str) -> frozenset[str]:
    return frozenset(w.casefold() for w in text.split())


@dataclass(frozen=True, slots=True)
class Lists:
    """lexicon.toml, read once."""

    shorthand: frozenset[str]
    dosing: frozenset[str]
    units: frozenset[str]
    titles: frozenset[str]
    services: frozenset[str]
    institutions: frozenset[str]
    address: frozenset[str]
    loaded: frozenset[str]
    negation: frozenset[str]
    doubt: frozenset[str]
    others: frozenset[str]
    form_print: frozenset[str]
    function_words: frozenset[str]
    prescribing: frozenset[str]
    immunisation_details: frozenset[str]
    postnominals: frozenset[str]
    result_print: frozenset[str]
    narrative: frozenset[str]
    drug_stems: tuple[str, ...]
    panels: frozenset[str]

    @property
    def cues(self) -> frozenset[str]:
        return self.negation | self.doubt | self.others

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lists:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        try:
            return cls(
                frozenset(k.casefold() for k in data["shorthand"]),
                _words(data["dosing"]["words"]), _words(data["units"]["words"]), _words(data["titles"]["words"]),
                _words(data["services"]["words"]), _words(data["institutions"]["words"]),
                _words(data["address"]["words"]), _words(data["loaded"]["words"]),
                _words(data["cues"]["negation"]), _words(data["cues"]["doubt"]), _words(data["cues"]["others"]),
                _words(data["form_print"]["words"]), _words(data["function_words"]["words"]),
                _words(data["prescribing"]["words"]), _words(data["immunisation_details"]["words"]),
                _words(data["postnominals"]["words"]), _words(data["result_print"]["words"]),
                _words(data["narrative"]["words"]), tuple(sorted(_words(data["drug_stems"]["words"]))),
                frozenset(t.strip().casefold() for t in data["panels"]["terms"].splitlines() if t.strip()),
            )
        except KeyError as e:
            raise LexiconError(f"{path.name}: missing section or key {e}") from e


class Dictionaries:
    """The general and medical English dictionaries, looked up through spylls (Hunspell in Python).

    The files are found when this is made and read (about 2 CPU-s) at the first lookup, so
    that a run's fingerprint, which only hashes the files, costs no reading.
    """

    def __init__(self, folders: tuple[Path, ...] = DICTIONARY_FOLDERS) -> None:
        self.files: dict[str, Path] = {}
        english = _find(folders, f"{ENGLISH}.dic")
        medical = _find(folders, f"{MEDICAL}.dic")
        if english is None or medical is None:
            return
        us_aff = _find(folders, "en_US.aff") or _spylls_en_us()
        if not us_aff.is_file():  # without affix rules no word can be shown non-medical: all are kept
            return
        self.files = {"english": english, "english_aff": english.with_suffix(".aff"), "medical": medical,
                      "medical_aff": us_aff}

    @property
    def available(self) -> bool:
        return bool(self.files)

    @functools.cached_property
    def _read(self) -> tuple[Any, Any]:
        """(general, medical) spylls dictionaries, or (None, None) without the files."""
        if not self.files:
            return None, None
        from spylls.hunspell import Dictionary
        from spylls.hunspell.readers import read_aff, read_dic
        from spylls.hunspell.readers.file_reader import FileReader

        english = Dictionary.from_files(str(self.files["english"].with_suffix("")))
        aff, context = read_aff(FileReader(str(self.files["medical_aff"])))
        medical = Dictionary(aff, read_dic(FileReader(str(self.files["medical"]), encoding=context.encoding), aff=aff,
                                           context=context))
        return english, medical

    def fingerprint(self) -> str:
        """What the dictionaries are, for a run's provenance: SHA-256 of their files, or "absent"."""
        if not self.available:
            return "absent"
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].read_bytes())
        return h.hexdigest()

    @functools.lru_cache(maxsize=65536)  # noqa: B019  (one instance per process; words repeat)
    def english(self, word: str) -> bool:
        english = self._read[0]
        return english is not None and english.lookup(word)

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def stems(self, word: str) -> frozenset[str]:
        """The words the general dictionary derives `word` from ("denies" -> deny), case-folded; none without it."""
        english = self._read[0]
        if english is None or not word.isalpha():  # "21st", "10th": ordinals, which hunspell parses as compounds
            return frozenset()
        return frozenset(stem.casefold() for stem in _dictionary_stems(english, word))

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def medical(self, word: str) -> bool:
        """Whether the medical dictionary has the word or one of its English stems, in either spelling."""
        english, medical = self._read
        if medical is None or english is None:
            return True  # without it no word can be shown to be non-medical
        stems = {word, word.casefold()} | _dictionary_stems(english, word)
        return any(medical.lookup(v) for s in stems for v in _spellings(s))


# English inflectional endings and what the base may end in instead: "drooping" -> droop,
# "worsened" -> worsen, "ribs" -> rib, "bruises" -> bruise, "tiredness" -> tired, "shakily" -> shaky.
_ENDINGS = (("ies", ("y",)), ("es", ("", "e")), ("s", ("",)), ("ied", ("y",)), ("ed", ("", "e")), ("d", ("",)),
            ("ing", ("", "e")), ("ness", ("",)), ("iness", ("y",)), ("ily", ("y",)), ("ly", ("", "e")),
            ("er", ("", "e")), ("est", ("", "e")))


def _dictionary_stems(english: Any, word: str) -> set[str]:
    """The stems hunspell finds for `word`; a compound ("21st" = 21 + st) has none of its own."""
    return {f.stem for f in english.lookuper.good_forms(word) if hasattr(f, "stem")}


def _spellings(word: str) -> set[str]:
    out = {word}
    for pattern, repl in _US_SPELLINGS:
        out |= {pattern.sub(repl, w) for w in out}
    return out


def _find(folders: tuple[Path, ...], name: str) -> Path | None:
    return next((f / name for f in folders if (f / name).is_file()), None)


def _spylls_en_us() -> Path:
    import spylls.hunspell  # spylls ships en_US, whose affix rules the medical word list is made for
    return Path(spylls.hunspell.__file__).parent / "data" / "en" / "en_US.aff"


@dataclass(frozen=True)
class Lexicon:  # not slotted: folded_units is cached on the instance
    """The lists and the dictionaries together: what a word of an entry is."""

    lists: Lists
    dictionaries: Dictionaries

    def narrative(self, word: str, written: str = "") -> bool:
        """Ordinary English with no clinical meaning of its own.

        `word` is case-folded and edge-stripped; `written` is the word as written, so that proper
        nouns the dictionary holds capitalised (April, Manchester) are found too.
        """
        if not word.isalpha() or self.loaded(word) or self.cue(word):
            return False
        if word in self.lists.function_words or word in self.lists.narrative:
            return True
        if self.drug_like(word):
            return False
        english = self.dictionaries.english(word) or (written[:1].isupper() and self.dictionaries.english(
            written[:1] + written[1:].lower()))
        return english and not self.dictionaries.medical(word)

    def loaded(self, word: str) -> bool:
        """A clinically loaded everyday word, or an inflection of one ("shoulders", "worsened", "drooping")."""
        return bool(self.forms(word) & self.lists.loaded)

    def cue(self, word: str) -> bool:
        """A negation, doubt or someone-else's cue, or a form the general dictionary derives from one.

        Not by stripping endings: "notes" is not "not". Inflections the dictionary does not
        derive are listed in lexicon.toml ("refuses", "refused").
        """
        return word in self.lists.cues or bool(self.dictionaries.stems(word) & self.lists.cues)

    @functools.lru_cache(maxsize=65536)  # noqa: B019  (one lexicon per process; words repeat)
    def forms(self, word: str) -> frozenset[str]:
        """The word and every word it may be an inflection of: the general dictionary's stems, and
        the word with each plain English ending stripped. Hunspell's stems alone miss some ("shoulders"
        gives "should"); finding too many only makes more words loaded, so more is sent."""
        found = {word} | self.dictionaries.stems(word)
        for suffix, bases in _ENDINGS:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                stem = word[: len(word) - len(suffix)]
                found |= {stem + b for b in bases}
                if len(stem) >= 4 and stem[-1] == stem[-2]:  # "swollen"/"dropped": the doubled consonant
                    found.add(stem[:-1])
        return frozenset(found)

    @functools.cached_property
    def folded_units(self) -> frozenset[str]:
        """Units as OCR confuses their letters ("umol/1" for umol/l)."""
        from pipelines.clinical.text import fold
        return frozenset(fold(u) for u in self.lists.units)

    def drug_like(self, word: str) -> bool:
        """Whether a word ends like a drug's international name (apixaban, semaglutide)."""
        return len(word) >= 6 and word.endswith(self.lists.drug_stems)

    def fingerprint(self) -> str:
        return hashlib.sha256(LEXICON_FILE.read_bytes() + self.dictionaries.fingerprint().encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return Lexicon(Lists.load(), Dictionaries())

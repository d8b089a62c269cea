#!/usr/bin/env python3
"""Check the worker-facing texts in data/texts/ against each other and the SMS budgets.

Usage: scripts/check-texts.py [TEXTS_DIR]     (default: data/texts/ beside scripts/)

Each language file (en.json and its translations) maps a text id to a text: `sms.*`
texts are texted to workers, `page.*` texts are the registration page's, `form.*` texts
are the form's errors (some of which are also texted as the `{reason}` of a refusal).
This script checks, for every translation against en.json:

- the same ids;
- the same placeholders, each as many times (`{title}`, `{}`, `{project}`, ...);
- the literals the service or the worker relies on: `JOIN {project} WORKER` (parsed by
  the service), the ASCII digits 1 and 2 of `sms.ask_phone_type` (the worker replies with
  one), `STOP` in the help texts, and the names and characters kept untranslated;
- the link `{}` last in every `sms.*` text that has it, after ": ", so that the phone
  makes it clickable and nothing sticks to it;
- `{username}` a word of its own where the page shows it in bold;

then measures every `sms.*` text (but `sms.username_taken_reason`, a part of others) as
the service sends it: placeholders filled with the longest values they take (below), the
smart encoding applied (letters with an accent that GSM-7 lacks folded to their base
letter, typographic quotes and dashes to ASCII), then its encoding and parts (3GPP TS
23.038 / 23.040, as src/domain/encoding.rs counts them). It prints a table of encoding and parts per text and language, and exits 1 when a
check fails or a text breaks its budget:

- a text that is GSM-7 after smart encoding (en, fr, es, pt, sw) must be one part;
- a UCS-2 text (hi, ar) may take more, but at most UCS2_MAX_PARTS (the projects' default
  max_parts_per_sms): keep them as short as is natural, and watch the table.

KNOWN_OVER_BUDGET lists the texts that are known to break their budget and are fixed
elsewhere: they are shown, and fail the check once they fit (so that the list is emptied).

It also checks keywords.json, the opt-out and help words of each language besides the
English ones: one word each, Latin ones in upper case without any accent (é too: replies
are matched with every accent folded), none in both lists, none a word a worker sends for
another reason (DENIED), each with a note; and that the help texts offer ("STOP or X")
only opt-out words the language lists.

Only the Python 3 standard library is used.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

LANGUAGES = ["en", "fr", "es", "pt", "sw", "hi", "ar"]
REFERENCE = "en"

# --- SMS encoding (3GPP TS 23.038, 6.2.1 and 6.2.1.1) -----------------------------------

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}  # 0x1B is the escape to the extension table, not a character.
GSM7_EXTENSION = set("\x0c^{}\\[~]|€")  # two septets each: the escape, then the code

GSM7_SINGLE, GSM7_PART = 160, 153  # septets: one part alone, each part once split
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units: likewise

# The most parts a UCS-2 text may take (DEFAULT_MAX_PARTS_PER_SMS in src/domain/project.rs).
UCS2_MAX_PARTS = 3

# Smart encoding: what replaces a character GSM-7 lacks. The Latin letters with an accent
# GSM-7 lacks that the texts' languages use, by their base letter (é è ù ì ò à ñ ç-capital
# and the umlauts are GSM-7 and stay). Deliberately a list, not any Unicode decomposition:
# a letter the service might not fold makes the text UCS-2 here, and so is seen.
LETTER_FOLDS = {
    **dict.fromkeys("áâã", "a"), **dict.fromkeys("ÁÂÃÀ", "A"),
    **dict.fromkeys("êë", "e"), **dict.fromkeys("ÊËÈ", "E"),
    **dict.fromkeys("íîï", "i"), **dict.fromkeys("ÍÎÏÌ", "I"),
    **dict.fromkeys("óôõ", "o"), **dict.fromkeys("ÓÔÕÒ", "O"),
    **dict.fromkeys("úû", "u"), **dict.fromkeys("ÚÛÙ", "U"),
    "ç": "c", "œ": "oe", "Œ": "OE",
}
# The other replacements: typographic punctuation and spaces, invisible characters.
LOOK_ALIKES = {
    **LETTER_FOLDS,
    "«": '"', "»": '"', "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u02bc": "'", "´": "'",
    "`": "'", "\u2039": "<", "\u203a": ">",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2022": "-", "\u00b7": "-", "\u2026": "...",
    "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\t": " ",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
}


def gsm7_septets(c: str) -> int | None:
    """Septets `c` takes in GSM-7 (1, or 2 from the extension table); None if it has none."""
    if c in GSM7_BASIC:
        return 1
    if c in GSM7_EXTENSION:
        return 2
    return None


def fold(c: str) -> str:
    """`c` as smart encoding sends it: itself if GSM-7 has it, else its look-alike, else
    itself (a Devanagari or Arabic letter stays, and makes the text UCS-2)."""
    if gsm7_septets(c) is not None:
        return c
    return LOOK_ALIKES.get(c, c)


def smart(text: str) -> str:
    """`text` after smart encoding."""
    return "".join(fold(c) for c in text)


def measure(text: str) -> tuple[str, int, int]:
    """(encoding, units, parts) of `text` as it is sent (after smart encoding)."""
    text = smart(text)
    widths = [gsm7_septets(c) for c in text]
    if all(w is not None for w in widths):
        encoding, single, per_part = "GSM-7", GSM7_SINGLE, GSM7_PART
    else:
        encoding, single, per_part = "UCS-2", UCS2_SINGLE, UCS2_PART
        widths = [len(c.encode("utf-16-le")) // 2 for c in text]
    total = sum(widths)
    if total <= single:
        return encoding, total, 1 if total else 0
    parts, used = 1, 0
    for w in widths:  # a character (escape pair, surrogate pair) is never split
        if used + w > per_part:
            parts, used = parts + 1, 0
        used += w
    return encoding, total, parts


# --- The longest values of the placeholders --------------------------------------------

TITLE = "T" * 30  # a project's display name: at most 30 units (MAX_DISPLAY_NAME_UNITS)
PROJECT = "p" * 20  # a project's short name
USERNAME = "u" * 80  # the longest username the form allows (MAX_USERNAME_CHARS)
LONG_USERNAME = "u" * 128  # the longest (COGNITO_MAX_USERNAME), for sms.account_ready
NUMBER = "128"  # {min} and {max}: the widest limit
# The registration link as budgeted, 97 characters (https:// and a 52-character host, then
# /a/<project>/register/<22-character token>), and the short link (85: the host, then
# /r/<token>) that the service sends when it makes fewer parts.
FULL_LINK = "https://" + "h" * 52 + "/a/pp/register/" + "k" * 22
SHORT_LINK = "https://" + "h" * 52 + "/r/" + "k" * 22
PLAY_STORE_URL = "https://play.google.com/store/apps/details?id=org.commcare.dalvik"
assert (len(FULL_LINK), len(SHORT_LINK), len(PLAY_STORE_URL)) == (97, 85, 65)

# Texts known to break their budget, by (language, id), with why they are let pass for now.
KNOWN_OVER_BUDGET: dict = {}

# The texts that can be the {reason} of a username refusal.
TAKEN_REASON = "sms.username_taken_reason"
FORM_USERNAME_REASONS = [
    "form.required",
    "form.username_length",
    "form.username_characters",
    "form.username_reserved",
    "form.username_taken",
    "form.hq_username_too_long",
    "form.hq_username_dots",
    "form.hq_username_reserved",
    "form.directory_username_too_long",
]

# --- The literals kept untranslated ----------------------------------------------------

# Kept in a translation wherever the English text has them.
KEPT_LITERALS = [
    "JOIN {project} WORKER",
    "Android",
    "CommCare",
    "Google Play",
    "SMS",
    "'.'",
    "'_'",
    "'-'",
]
# Required in given texts: the reply digits (ASCII, not within a number) and STOP.
REQUIRED = {
    "sms.ask_phone_type": [r"(?<![0-9])1(?![0-9])", r"(?<![0-9])2(?![0-9])"],
    "sms.help": [r"\bSTOP\b"],
    "sms.help_unknown_project": [r"\bSTOP\b"],
}
# Texts where {username} is shown in bold: it must be a word of its own.
BOLD_USERNAME = ["page.complete_text", "page.creating_named"]

PLACEHOLDER = re.compile(r"\{[a-z]*\}")


def fill(text: str, reason: str = "", username: str = USERNAME, link: str = SHORT_LINK) -> str:
    """`text` with its placeholders replaced by the values it is measured with."""
    values = {
        "{title}": TITLE,
        "{project}": PROJECT,
        "{username}": username,
        "{reason}": reason,
        "{min}": NUMBER,
        "{max}": NUMBER,
        "{app}": "CommCare",
        "{}": link,
    }
    return PLACEHOLDER.sub(lambda m: values[m.group(0)], text)


def check_structure(lang: str, texts: dict, reference: dict) -> list[str]:
    """The problems of `texts` against the reference: ids, placeholders, literals."""
    problems = []
    missing = sorted(set(reference) - set(texts))
    extra = sorted(set(texts) - set(reference))
    if missing:
        problems.append(f"{lang}: missing ids {missing}")
    if extra:
        problems.append(f"{lang}: ids not in {REFERENCE}.json {extra}")
    for key, english in reference.items():
        text = texts.get(key)
        if not isinstance(text, str):
            if key in texts:
                problems.append(f"{lang} {key}: not a string")
            continue
        if not text.strip():
            problems.append(f"{lang} {key}: empty")
        if text != text.strip():
            problems.append(f"{lang} {key}: leading or trailing spaces")
        want, got = Counter(PLACEHOLDER.findall(english)), Counter(PLACEHOLDER.findall(text))
        if want != got:
            problems.append(
                f"{lang} {key}: placeholders {dict(got)} instead of {dict(want)}"
            )
        for literal in KEPT_LITERALS:
            if literal in english and literal not in text:
                problems.append(f"{lang} {key}: {literal!r} must be kept as it is")
        for pattern in REQUIRED.get(key, []):
            if not re.search(pattern, text):
                problems.append(f"{lang} {key}: must contain {pattern!r}")
        if key.startswith("sms.") and "{}" in english and not text.endswith(": {}"):
            problems.append(f"{lang} {key}: the link must end the text, after ': '")
        if key in BOLD_USERNAME and not re.search(r"(^|\s)\{username\}(?!\w)", text):
            problems.append(f"{lang} {key}: {{username}} must be a word of its own")
    return problems


def sms_cases(texts: dict) -> dict[str, list[tuple[str, str, bool]]]:
    """For each `sms.*` id, the filled texts it is measured as: (label, text, binding).

    A binding case must fit the budget; the others are shown for information.
    """

    def units(key: str) -> int:
        return measure(fill(texts[key]))[1]

    longest_form = max(FORM_USERNAME_REASONS, key=units)
    longest_reason = fill(texts[longest_form])
    taken = texts[TAKEN_REASON]
    cases = {}
    for key, text in texts.items():
        if not key.startswith("sms.") or key == TAKEN_REASON:
            continue
        if key == "sms.reinstall":
            cases[key] = [("", fill(text, link=PLAY_STORE_URL), True)]
        elif "{}" in text:
            # The service sends the short link when it makes fewer parts than the full one.
            cases[key] = [
                ("short", fill(text, link=SHORT_LINK), True),
                ("full", fill(text, link=FULL_LINK), False),
            ]
        elif key == "sms.account_ready":
            cases[key] = [("", fill(text, username=LONG_USERNAME), True)]
        elif key == "sms.username_refused":
            # With a form's longer reason the service cuts the username, or leaves it out
            # (then it is sms.username_refused_unnamed): shown for information only.
            # The echoed username is cut so that the answer stays one part: measured with
            # a 20-character one, the 80-character one for information.
            cases[key] = [
                ("taken", fill(text, reason=taken, username="u" * 20), True),
                ("taken, 80-character username", fill(text, reason=taken), False),
                ("longest", fill(text, reason=longest_reason), False),
            ]
        elif key == "sms.username_refused_unnamed":
            cases[key] = [("", fill(text, reason=longest_reason), True)]
        else:
            cases[key] = [("", fill(text), True)]
    return cases


def over_budget(encoding: str, parts: int) -> bool:
    return parts > (1 if encoding == "GSM-7" else UCS2_MAX_PARTS)


# --- keywords.json ---------------------------------------------------------------------

# Words a worker sends for other reasons (yes, no, ok, greetings, the reply keywords, the
# English ones handled already): never an opt-out or help word of a language.
DENIED = {
    "JOIN", "WORKER", "START", "UNSTOP", "STOP", "HELP", "INFO", "OK", "OKAY",
    "OUI", "NON", "SI", "NO", "SIM", "NAO", "NDIO", "HAPANA", "SAWA", "ASANTE",
    "BONJOUR", "SALUT", "MERCI", "HOLA", "GRACIAS", "OLA", "OBRIGADO", "OBRIGADA",
    "JAMBO", "HABARI", "MAMBO", "HAAN", "HAN", "NAHI", "NAHIN", "JI", "NAMASTE",
    "हाँ", "हां", "नहीं", "ठीक", "नमस्ते", "धन्यवाद", "نعم", "لا", "مرحبا", "شكرا", "السلام",
}
# "STOP or WORD" in a help text: WORD is offered as an opt-out word.
OFFERED = re.compile(r"\bSTOP\s+(?:ou|o|au|or|या|أو)\s+([^\s.,;:!?،؟।]+)")


def check_keywords(keywords: dict, files: dict) -> list[str]:
    """The problems of keywords.json, and of the opt-out words the help texts offer."""
    problems = []
    for lang in LANGUAGES:
        if lang == REFERENCE:
            continue
        entry = keywords.get(lang)
        if not isinstance(entry, dict):
            problems.append(f"keywords {lang}: missing")
            continue
        lists = {kind: entry.get(kind) for kind in ("opt_out", "help")}
        notes = entry.get("notes", {})
        words = []
        for kind, listed in lists.items():
            if not listed or not all(isinstance(w, str) for w in listed):
                problems.append(f"keywords {lang}: {kind} must be a list of words")
                continue
            words += listed
            for word in listed:
                if len(word.split()) != 1 or word != word.strip():
                    problems.append(f"keywords {lang}: {word!r} is not one word")
                latin = any("LATIN" in unicodedata.name(c, "") for c in word)
                if latin and not (word.isascii() and word == word.upper()):
                    plain = unicodedata.normalize("NFD", word).encode("ascii", "ignore")
                    problems.append(
                        f"keywords {lang}: {word!r} must be written {plain.decode().upper()!r}"
                    )
                if any(c.isdigit() for c in word) or word in DENIED:
                    problems.append(f"keywords {lang}: {word!r} is sent for other reasons")
                if not notes.get(word):
                    problems.append(f"keywords {lang}: {word!r} has no note")
        for word, count in Counter(words).items():
            if count > 1:
                problems.append(f"keywords {lang}: {word!r} is listed twice")
        for word in set(notes) - set(words):
            problems.append(f"keywords {lang}: note for {word!r}, not a listed word")
        for key in ("sms.help", "sms.help_unknown_project"):
            for offered in OFFERED.findall(files[lang][key]):
                if smart(offered).upper() not in (lists["opt_out"] or []):
                    problems.append(
                        f"{lang} {key}: offers {offered!r}, not an opt-out word of keywords.json"
                    )
    return problems


def doc_block(path: Path, name: str, body: str, write: bool) -> list:
    """Keeps the block between `<!-- NAME -->` and `<!-- /NAME -->` of `path` equal to
    `body` (rewriting it when `write`); a problem when it differs."""
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    if start not in text or end not in text:
        return [f"{path.name}: no {start.strip()} ... {end} block"]
    before, rest = text.split(start, 1)
    current, after = rest.split(end, 1)
    if current == body:
        return []
    if write:
        path.write_text(before + start + body + end + after, encoding="utf-8")
        return []
    return [f"{path.name}: the {name} block differs from the texts: run scripts/check-texts.py --write-docs"]


# A quoted default SMS in the docs (*"{Project}: ...: {link}"*), spread over lines.
QUOTED = re.compile(r'\*"(\{Project\}[^"]*)"\*')


def doc_quotes(docs: Path, english: dict) -> list:
    """Every default SMS the docs quote (`*"{Project}..."*`, with `{link}` for the link)
    must be the English text itself, so that the docs cannot drift from it."""
    problems = []
    texts = set(english.values())
    for path in sorted(docs.glob("*.md")):
        for quote in QUOTED.findall(path.read_text(encoding="utf-8")):
            text = " ".join(quote.split()).replace("{Project}", "{title}").replace("{link}", "{}")
            if text not in texts:
                problems.append(f"{path.name} quotes {quote!r}, which is no English text of data/texts/en.json")
    return problems


def main() -> int:
    here = Path(__file__).resolve().parent
    args = [a for a in sys.argv[1:] if a != "--write-docs"]
    write_docs = "--write-docs" in sys.argv[1:]
    docs = here.parent / "docs"
    directory = Path(args[0]) if args else here.parent / "data" / "texts"
    files = {}
    problems = []
    for lang in LANGUAGES:
        path = directory / f"{lang}.json"
        try:
            files[lang] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"{lang}: cannot read {path}: {e}")
    reference = files.get(REFERENCE, {})
    for lang, texts in files.items():
        problems += check_structure(lang, texts, reference)
    if not problems:
        try:
            keywords = json.loads((directory / "keywords.json").read_text(encoding="utf-8"))
            problems += check_keywords(keywords, files)
        except (OSError, ValueError) as e:
            problems.append(f"cannot read keywords.json: {e}")
    if problems:  # measuring needs every id and placeholder in place
        print("\n".join(problems), file=sys.stderr)
        return 1

    # The table: per sms text (and case), per language: G or U (GSM-7 or UCS-2), the
    # parts, and the units in brackets. '!' marks a broken budget, '~' an unbound case,
    # '*' a known broken budget (KNOWN_OVER_BUDGET).
    measured = {lang: sms_cases(files[lang]) for lang in LANGUAGES}
    warnings = []
    rows = [
        (key, label, binding)
        for key, cases in measured[REFERENCE].items()
        for label, _, binding in cases
    ]
    width = max(len(k) + len(lbl) + 3 for k, lbl, _ in rows)
    print(f"{'text (G: GSM-7, U: UCS-2; parts (units))':<{width}} " + " ".join(
        f"{lang:<10}" for lang in LANGUAGES
    ))
    md = ["| SMS (parts, encoding) | " + " | ".join(LANGUAGES) + " |",
          "|---|" + "---|" * len(LANGUAGES)]
    for key, label, binding in rows:
        name = f"{key} [{label}]" if label else key
        cells = []
        if binding:
            md_cells = []
            for lang in LANGUAGES:
                text = next(t for lbl, t, _ in measured[lang][key] if lbl == label)
                encoding, _, parts = measure(text)
                md_cells.append(f"{parts} {'GSM-7' if encoding.startswith('G') else 'UCS-2'}")
            md.append(f"| `{key}`{' (' + label + ')' if label else ''} | " + " | ".join(md_cells) + " |")
        for lang in LANGUAGES:
            text = next(t for lbl, t, _ in measured[lang][key] if lbl == label)
            encoding, units, parts = measure(text)
            mark = " "
            known = KNOWN_OVER_BUDGET.get((lang, key))
            if binding and over_budget(encoding, parts):
                mark = "*" if known else "!"
                message = f"{lang} {name}: {parts} parts in {encoding} ({units} units)"
                if known:
                    warnings.append(f"{message}: known, {known}")
                else:
                    problems.append(f"{message}: over budget")
            elif binding and known:
                problems.append(f"{lang} {key} fits now: take it out of KNOWN_OVER_BUDGET")
            elif not binding:
                mark = "~"
            cells.append(f"{encoding[0]}{parts} ({units}){mark}".ljust(10))
        print(f"{name:<{width}} " + " ".join(cells))
    print(
        f"\n~: for information (the service uses another form); *: known over budget; "
        f"budget: one part in GSM-7, at most {UCS2_MAX_PARTS} in UCS-2"
    )
    for warning in warnings:
        print(f"warning: {warning}")
    if not args:
        problems += doc_block(docs / "sending.md", "texts-parts", "\n".join(md) + "\n", write_docs)
        words = ["| Language | Opt-out words | Help words |", "|---|---|---|"]
        for lang in LANGUAGES[1:]:
            lists = keywords.get(lang, {})
            words.append(
                f"| {lang} | {', '.join(lists.get('opt_out', []))} | {', '.join(lists.get('help', []))} |"
            )
        problems += doc_block(docs / "languages.md", "keywords", "\n".join(words) + "\n", write_docs)
        problems += doc_quotes(docs, files[REFERENCE])
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("all texts checked: ids, placeholders, literals, keywords and SMS budgets hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())

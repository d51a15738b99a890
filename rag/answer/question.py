"""Question analysis: what kind of answer a question wants, and what it is about.

Pure functions of the text (no index, no model), so they are cheap, testable and
shared by evidence selection, composition and the follow-up logic:

- kind: "comparison" (two or more named items set against each other), "list"
  ("which papers ..."), "quantity" (wants numbers and units), "definition"
  ("What is X?"), "yesno", or "open";
- entities: the named items (methods, datasets, models) — capitalised, CamelCase,
  acronym and hyphen-number tokens ("LAION-5B", "GPT-4"), and the sides of
  "X and Y" / "X vs Y" / "between X and Y" in a comparison;
- aspects: the question's content words, stemmed, that an answer should cover;
- subject: what a definition question defines ("split computing"), named or not;
- followup: the question leans on an earlier turn (pronouns, "what about ...",
  "and the ...?", or too short to stand alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.lexical import stems

QUESTION_WORDS = {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was",
    "were", "do", "does", "did", "can", "could", "should", "would", "will", "has", "have", "had",
    "compare", "list", "name", "describe", "explain", "define", "give", "tell", "and", "or",
    "the", "a", "an", "in", "on", "of", "for", "to", "with", "between", "versus", "vs", "it",
    "its", "they", "their", "this", "that", "these", "those", "also", "about", "any", "some",
    "papers", "paper", "both", "each", "i", "we", "you", "me", "many", "much", "from", "by",
    "at", "as", "into", "than", "there", "other", "others", "please", "summarize", "summarise",
    "show",
}  # fmt: skip
"""Capitalised words that are not named items (they start questions or glue them)."""

GENERIC = {
    "method", "methods", "model", "models", "approach", "approaches", "paper", "papers",
    "work", "works", "study", "studies", "technique", "techniques", "dataset", "datasets",
    "difference", "differences", "differ", "compare", "comparison", "versus", "vs", "between",
    "propose", "proposed", "present", "use", "used", "using", "different", "various", "several",
}  # fmt: skip
"""Words that frame a question without saying what the answer is about."""

NAMED = re.compile(
    r"\b(?:[A-Za-z]*[A-Z][A-Za-z]*[-–][0-9A-Za-z.]+(?:[-–][0-9A-Za-z]+)*"  # LAION-5B, BERT-base
    r"|[A-Za-z]+[-–]?\d[\dA-Za-z.]*"  # GPT4, ResNet50, T5
    r"|[A-Z][a-z]+[A-Z][A-Za-z0-9]*"  # CamelCase: DataComp, TokenUnify
    r"|[A-Z]{2,}[A-Za-z0-9]*s?"  # acronyms: DFN, CLIP, MoEs
    r"|[A-Z][a-z]+)\b"  # Capitalised word (checked against QUESTION_WORDS)
)
COMPARE_CUE = re.compile(
    r"\b(?:compare[sd]?|comparison|contrast|differ(?:s|ence|ences)?|versus|vs\.?|better than|"
    r"worse than|relate to|relation between|similarities)\b",
    re.I,
)
SIDES = (
    re.compile(r"\bbetween\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)(?=[?.,;]|\s+(?:in|on|for|when|with|regarding)\b|$)", re.I),
    re.compile(r"\bcompare\s+(?P<a>.+?)\s+(?:and|with|to|vs\.?|versus)\s+(?P<b>.+?)(?=[?.,;]|\s+(?:in|on|for|when|regarding)\b|$)", re.I),
    re.compile(r"(?:^|\b(?:do|does|is|are|how)\s+)(?P<a>[^,?]+?)\s+(?:vs\.?|versus)\s+(?P<b>.+?)(?=[?.,;]|\s+(?:in|on|for|when)\b|$)", re.I),
    re.compile(r"\b(?:do|does|did|are|is)\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+(?:differ|compare|relate|contrast)(?:s|d|ed|ently)?\b", re.I),
    # "How do ColBERTer and LeanVec each cut ...", "What do the NAS study and sharpDARTS report ..."
    re.compile(r"\b(?:do|does|did|are|were)\s+(?P<a>[^?,;]{2,70}?)\s+and\s+(?P<b>[^?,;]{2,80}?)\s+(?:each\s+|both\s+|respectively\s+)?"
               r"(?:report|conclude|make|relate|cut|speed|search|compare|differ|use|achieve|handle|improve|reduce|"
               r"work|say|find|show|propose|train|learn|evaluate|address|tackle|define|measure|select|choose|"
               r"combine|represent|model|scale|perform|get|obtain|deal|approach|treat|explain|describe|build|"
               r"construct|design|compute|estimate|encode|detect|generate|predict|handle|avoid|solve)(?:s|es|ed|d|ing)?\b", re.I),
)  # fmt: skip
MULTI_CUE = re.compile(r"\b(?:each|both|respectively|differently)\b", re.I)
LIST_CUE = re.compile(
    r"^\s*(?:(?:which|what)\s+(?:\w+\s+){0,2}(?:papers|works|studies|articles)\b|"
    r"(?:which|what)\s+(?:\w+\s+){0,2}(?:methods|models|approaches|systems)\s+(?:propose|introduce|"
    r"use|train|learn|address|tackle|study|improve|make|reduce)|list\s+(?:the\s+)?papers|"
    r"name\s+(?:some|the)\s+papers|are\s+there\s+(?:any\s+)?papers|(?:find|show)\s+(?:me\s+)?papers)",
    re.I,
)
"""A list of *papers* ("Which papers propose ..."): one best sentence per relevant paper."""
ENUMERATION_CUE = re.compile(
    r"^\s*(?:(?:on|in|with|for|from|into|by)\s+)?(?:which|what)\s+(?:\w+[\s-]+){0,3}(?:datasets|benchmarks|"
    r"tasks|techniques|methods|languages|metrics|criteria|categories|components|modalities|models|"
    r"domains|baselines|stages|steps|types|kinds|features|settings|problems|applications)\b|\blist\b",
    re.I,
)
"""A list *inside* a paper ("On which datasets was X evaluated?"): prefer enumerating sentences."""
QUANTITY_CUE = re.compile(
    r"\b(?:how\s+(?:many|much|large|big|fast|long|small|far|often|deep|wide|accurate)|"
    r"by\s+how\s+much|what\s+(?:[\w-]+\s+){0,3}(?:percentage|fraction|share|proportion|number|size|"
    r"speed-?up|accuracy|score|error|rate|area|power|latency|throughput|memory|cost|f1|bleu|perplexity)|how\s+\w+\s+(?:is|are|was|were)\s+the\s+(?:gain|speed-?up)|"
    r"speed-?up|percent|number\s+of|parameters)\b",
    re.I,
)
DEFINITION = re.compile(r"^\s*(?:what\s+(?:is|are|was)\s+(?:an?\s+|the\s+)?|what's\s+|define\s+)(?P<term>[^?]{1,60})\??\s*$", re.I)
YESNO = re.compile(r"^\s*(?:is|are|was|were|does|do|did|can|could|will|would|has|have|should)\b", re.I)
PRONOUN = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|this|that|these|those|he|she|his|her)\b"
    r"|\bthe\s+(?:paper|method|model|approach|authors|dataset|work|same|experiments?|results?|"
    r"evaluation|study|system|framework|architecture|proposed|technique)\b",
    re.I,
)
ELLIPSIS = re.compile(r"^\s*(?:what|how)\s+about\b|^\s*(?:and|also|but|so)\b|^\s*(?:and\s+)?the\s+\w+\s*\??\s*$", re.I)
FOLLOWUP_MAX_ASPECTS = 2  # a question with this few content words and no name cannot stand alone

Kind = str  # "comparison" | "list" | "quantity" | "definition" | "yesno" | "open"


@dataclass(frozen=True)
class Question:
    """What a question asks for (see the module docstring)."""

    text: str
    kind: Kind
    entities: tuple[str, ...] = ()
    aspects: tuple[str, ...] = ()  # stemmed content words, entity words excluded
    wants_numbers: bool = False
    wants_enumeration: bool = False  # "which datasets/tasks ...": prefer sentences listing items
    followup: bool = False
    subject: str = ""  # definitions: the defined term; the papers that use it answer
    aspect_words: tuple[str, ...] = field(default=(), compare=False)  # the same, unstemmed

    @property
    def multi_entity(self) -> bool:
        return len(self.entities) >= 2


def _clean_side(side: str) -> str:
    side = re.sub(r"^(?:the|a|an)\s+", "", side.strip(" ,;:?.\"'"), flags=re.I)
    side = re.sub(r"\s+(?:methods?|models?|approaches|datasets?|papers?)$", "", side, flags=re.I)
    return side.strip()


def _trim_side(side: str) -> str:
    """A side that opens with a named item is that item ("CoreInfer speed up" → "CoreInfer")."""
    named = [item for item in named_items(side) if side.startswith(item)]
    return named[0] if named else side


def named_items(text: str) -> list[str]:
    """Capitalised/CamelCase/acronym/hyphen-number tokens, first word kept only when it is
    not a question word; adjacent capitalised words join ("Pointer Networks")."""
    found: list[str] = []
    previous_end = -2
    for match in NAMED.finditer(text):
        token = match.group(0)
        if token.lower() in QUESTION_WORDS or len(token) < 2 or token.islower():
            previous_end = -2
            continue
        if token[0].isupper() and token[1:].islower() and match.start() == 0:
            continue  # "Retrieval-augmented ..." opening a question is not a name
        if found and match.start() == previous_end + 1 and text[previous_end] == " " \
                and token[0].isupper() and token[1:].islower():
            found[-1] = f"{found[-1]} {token}"
        else:
            found.append(token)
        previous_end = match.end()
    return list(dict.fromkeys(found))


def comparison_sides(text: str) -> list[str]:
    """The two sides of "between X and Y", "compare X and/with Y", "X vs Y",
    "do X and Y differ" (empty when the question has none of these shapes)."""
    for pattern in SIDES:
        match = pattern.search(text)
        if match:
            sides = [_trim_side(_clean_side(match.group(name))) for name in ("a", "b")]
            if all(sides) and all(len(side.split()) <= 8 for side in sides):
                return sides
    return []


def analyse(text: str) -> Question:
    """Classify a question and find its named items and aspects (pure)."""
    text = " ".join(text.split())
    sides = comparison_sides(text)
    named = named_items(text)
    compare = bool(COMPARE_CUE.search(text)) or bool(sides) or bool(MULTI_CUE.search(text))
    quantity = bool(QUANTITY_CUE.search(text))
    entities = named
    if sides and not quantity:
        entities = sides + [
            item for item in named if not any(item.lower() in side.lower() for side in sides)
            and re.search(rf"\b(?:and|,)\s+{re.escape(item)}\b", text)
        ]  # fmt: skip
    entity_stems = {stem for entity in entities for stem in stems(entity)}
    aspect_words = [
        word for word in re.findall(r"[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)?", text)
        if word.lower() not in QUESTION_WORDS and word.lower() not in GENERIC
        and stems(word) and not set(stems(word)) <= entity_stems
    ]  # fmt: skip
    aspects = tuple(dict.fromkeys(stem for word in aspect_words for stem in stems(word)))
    if quantity:  # "how much faster than X?" wants the number, not two sides
        kind = "quantity"
    elif compare and len(entities) >= 2:
        kind = "comparison"
    elif LIST_CUE.search(text):
        kind = "list"
    elif (definition := DEFINITION.match(text)) and len(aspects) + len(entities) <= 4:
        kind = "definition"
    elif YESNO.match(text):
        kind = "yesno"
    else:
        kind = "open"
    followup = bool(
        PRONOUN.search(text) or ELLIPSIS.search(text)
        or (not entities and len(aspects) <= FOLLOWUP_MAX_ASPECTS)
    )  # fmt: skip
    return Question(
        text=text, kind=kind, entities=tuple(entities), aspects=aspects,
        wants_numbers=kind == "quantity", followup=followup,
        subject=defined_term(definition.group("term")) if kind == "definition" else "",
        wants_enumeration=kind != "list" and bool(ENUMERATION_CUE.search(text)),
        aspect_words=tuple(dict.fromkeys(word.lower() for word in aspect_words)),
    )  # fmt: skip


SHORT_TERM = 4  # terms longer than this lose a plural "s" ("GANs" keeps its own)


def defined_term(term: str) -> str:
    """The term of "What are neural circuit diagrams?" as a paper would write it in any
    number: articles and a plural "s" dropped ("neural circuit diagram")."""
    term = _clean_side(term)
    return term[:-1] if len(term) > SHORT_TERM and term.endswith("s") and not term.endswith("ss") else term


def refers_back(question: Question) -> bool:
    """The question points at something said before ("it", "its", "the authors")."""
    return bool(PRONOUN.search(question.text))


def continues(question: Question, previous: Question, titles: list[str]) -> bool:
    """A question that names nothing of its own but reuses a content word of the earlier
    turn's question or of the paper it cited ("Where do the preference signals come
    from?" after "What is prefer-to-classify?") continues that turn."""
    if question.entities or not question.aspects:
        return False
    earlier = set(previous.aspects) | {stem for title in titles for stem in stems(title)}
    earlier |= {stem for entity in previous.entities for stem in stems(entity)}
    return bool(set(question.aspects) & earlier)


def followup_query(question: Question, carried: list[str], previous: Question | None) -> str:
    """The retrieval query of a follow-up: its own words plus the earlier turn's entities.

    `carried` are the named items (or cited paper titles) of the earlier turn. "What
    about DataComp?" names a new item, so it keeps the earlier question's *aspects*
    (what was asked) but drops its entities; "What about its limitations?" names
    nothing, so it keeps the earlier entities. The earlier question itself is never
    glued on.
    """
    if question.entities and previous is not None and ELLIPSIS.search(question.text):
        return " ".join([*question.entities, *previous.aspect_words, *question.aspect_words])
    extra = [item for item in carried if item.lower() not in question.text.lower()]
    return " ".join([question.text, *extra])

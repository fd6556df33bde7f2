"""Synthetic customers with a known truth, for the linking tests and ``bench/linking.py``.

``generate(people, seed)`` makes people in ES, FR, IT and PL and, for each, one to four order records
in different systems and channels, as sources write them: typos in names, first and last names
swapped, accents dropped, a Cyrillic name written in Latin letters by another system, phones in
national or international formats, missing or mistyped e-mails, street types abbreviated. Families
share a surname, an address and a landline but are different people (never one customer); with
``shared_contacts`` some households also share one e-mail and one mobile (every contact detail).
With ``placeholders`` a share of people give a store terminal's placeholder contact instead of
their own (``noemail@example.com`` and a national number of zeros, the same for all of them).
Every record carries its person's id, so precision and recall can be computed against the truth.
All names, addresses, phones and e-mails are made up.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PLACEHOLDER_EMAIL", "PLACEHOLDER_PHONES", "SyntheticRecord", "generate", "pair_scores"]

_FIRST = {
    "ES": "Ana José María Lucía Javier Carmen Pablo Sofía Andrés Elena Raúl Inés Jorge Nuria Óscar Begoña "
    "Álvaro Rocío Iñaki Marta Sergio Irene Diego Clara Hugo Paula Adrián Noelia Rubén Alba",
    "FR": "Élodie François Chloé Mathieu Léa Hélène Benoît Céline Théo Amélie Julien Inès Gaëlle Rémi "
    "Manon Noël Cécile Antoine Zoé Loïc Margaux Étienne Maëlle Jérôme Océane Baptiste Lucie",
    "IT": "Giulia Marco Chiara Luca Francesca Matteo Alessia Davide Federica Niccolò Sara Lorenzo "
    "Elisa Tommaso Ilaria Andrea Martina Simone Valentina Gabriele Beatrice Riccardo Greta",
    "PL": "Łukasz Małgorzata Paweł Agnieszka Krzysztof Joanna Michał Katarzyna Wojciech Zofia Tomasz "
    "Aleksandra Grzegorz Żaneta Piotr Ewelina Jędrzej Magdalena Bartłomiej Dorota Kamil Weronika",
}
_LAST = {
    "ES": "García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martín Jiménez Ruiz "
    "Hernández Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres Domínguez Vázquez "
    "Ramos Gil Ramírez Serrano Blanco Molina Morales Suárez Ortega Delgado Castro Ortiz Rubio Marín "
    "Sanz Núñez Iglesias Medina Garrido Cortés Castillo Santos Lozano Guerrero Cano Prieto Méndez",
    "FR": "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefèbvre "
    "Michel Garnier Faure Rousseau Blanc Guérin Muller Henry Roussel Nicolas Perrin Morin Mathieu "
    "Clément Gauthier Dumont Lopez Fontaine Chevalier Robin Masson Sanchez Gérard Nguyen Boyer Denis",
    "IT": "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti "
    "De Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani Rinaldi "
    "Caruso Ferrara Galli Martini Leone Longo Gentile Martinelli Vitale Lombardo Serra Coppola",
    "PL": "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak "
    "Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Krawczyk Piotrowski Grabowski Nowakowski "
    "Pawłowski Michalski Nowicki Adamczyk Dudek Zając Wieczorek Jabłoński Król Majewski Olszewski",
}
# Ukrainian customers in Poland: one system keeps the Cyrillic spelling, another writes it in Latin.
_CYRILLIC = [
    ("Олександр", "Шевченко"),
    ("Наталія", "Коваленко"),
    ("Андрій", "Бондаренко"),
    ("Ірина", "Ткаченко"),
    ("Дмитро", "Кравченко"),
    ("Оксана", "Мельник"),
]
_STREETS = {
    "ES": ("Calle", "C/", "Avenida", "Avda."),
    "FR": ("Rue", "Rue", "Avenue", "Av."),
    "IT": ("Via", "V.", "Viale", "Viale"),
    "PL": ("ulica", "ul.", "aleja", "al."),
}
_STREET_NAMES = [
    "Mayor",
    "Sol",
    "Paz",
    "Libertad",
    "Mar",
    "Olivos",
    "Rosales",
    "Pinos",
    "Flores",
    "Jardines",
    "Lago",
    "Molino",
    "Estación",
    "Sierra",
    "Castillo",
    "Fuente",
    "Puerto",
    "Colina",
    "Huerta",
    "Alameda",
    "Acacias",
    "Robles",
    "Cerezos",
    "Almendros",
    "Nogales",
    "Palmeras",
    "Encinas",
    "Sauces",
    "Victoria",
    "Esperanza",
    "Concordia",
    "Progreso",
    "Industria",
    "Comercio",
    "Trabajo",
    "Ciencia",
    "Música",
    "Poesía",
    "Pintura",
    "Europa",
    "América",
    "Italia",
    "Francia",
    "Polonia",
    "Roma",
    "París",
    "Varsovia",
    "Lisboa",
    "Atenas",
    "Viena",
    "Praga",
    "Berlín",
]
_DOMAINS = ("example.com", "example.es", "example.fr", "example.it", "example.pl", "mail.example.net")
_SYSTEMS = {"ES": "pyxis", "FR": "pyxis", "IT": "pyxis", "PL": "tempo"}
_CHANNELS = ("IN_STORE", "ONLINE", "PHONE", "MOBILE", "PARTNER", "B2B")
_PREFIX = {"ES": ("34", "6", 8), "FR": ("33", "61", 7), "IT": ("39", "34", 8), "PL": ("48", "5", 8)}
#: The contact a store terminal fills in when the customer gives none (valid, so the mapping keeps it).
PLACEHOLDER_EMAIL = "noemail@example.com"
PLACEHOLDER_PHONES = {"ES": "+34600000000", "FR": "+33610000000", "IT": "+393400000000", "PL": "+48500000000"}
_LANDLINE = {"ES": ("34", "91", 7), "FR": ("33", "1", 8), "IT": ("39", "06", 8), "PL": ("48", "22", 7)}


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    """One order's customer as a source sent it, with the id of the real person behind it."""

    person: int
    source_system: str
    sales_channel: str
    country_code: str
    customer: dict[str, Any]
    service_address: dict[str, Any]
    phone_as_entered: str | None  # the national or international form the seller typed

    def order_fields(self) -> dict[str, Any]:
        """The record's part of a canonical order (phone already E.164, as the mapping leaves it)."""
        return {
            "source_system": self.source_system,
            "sales_channel": self.sales_channel,
            "country_code": self.country_code,
            "customer": self.customer,
            "service_address": self.service_address,
        }


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # a letter dropped
        return word[:i] + word[i + 1 :]
    if kind == 1:  # two letters swapped
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + rng.choice("aeioulnrst") + word[i + 1 :]  # a letter replaced


def _strip_accents(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _formats(e164: str, country: str, rng: random.Random) -> str:
    code = _PREFIX[country][0]
    significant = e164[1 + len(code) :]
    national = ("0" + significant) if country == "FR" else significant
    grouped = " ".join(national[i : i + 3] for i in range(0, len(national), 3))
    spaced = " ".join(significant[i : i + 3] for i in range(0, len(significant), 3))
    return rng.choice([e164, f"+{code} {spaced}", f"00{code}{significant}", grouped, national])


@dataclass
class _Person:
    pid: int
    country: str
    first: str
    last: str
    email: str | None
    mobile: str | None
    landline: str | None
    street: str
    number: int
    postal_code: str
    city: str


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.first = {c: names.split() for c, names in _FIRST.items()}
        self.last = {c: names.replace("De Luca", "De_Luca").split() for c, names in _LAST.items()}
        self.pid = 0

    def _phone(self, table: dict[str, tuple[str, str, int]], country: str) -> str:
        code, lead, rest = table[country]
        return f"+{code}{lead}{_digits(self.rng, rest)}"

    def person(
        self,
        country: str,
        *,
        last: str | None = None,
        home: _Person | None = None,
        taken: set[str] = frozenset(),
    ) -> _Person:
        rng = self.rng
        self.pid += 1
        if country == "PL" and home is None and rng.random() < 0.05:
            first, surname = rng.choice(_CYRILLIC)
        else:
            first = rng.choice([name for name in self.first[country] if name not in taken])
            surname = last or rng.choice(self.last[country]).replace("_", " ")
            if country == "ES" and last is None:  # two surnames
                surname += " " + rng.choice(self.last["ES"])
        login = f"{_strip_accents(first).lower()}.{_strip_accents(surname).lower().replace(' ', '')}"
        email = (
            f"{login}{rng.randrange(10, 1_000_000)}@{rng.choice(_DOMAINS)}" if rng.random() < 0.85 else None
        )
        return _Person(
            pid=self.pid,
            country=country,
            first=first,
            last=surname,
            email=email,
            mobile=self._phone(_PREFIX, country) if rng.random() < 0.8 else None,
            landline=home.landline if home else self._phone(_LANDLINE, country),
            street=home.street if home else rng.choice(_STREET_NAMES),
            number=home.number if home else rng.randrange(1, 300),
            postal_code=home.postal_code if home else f"{rng.randrange(1000, 99_999):05d}",
            city=home.city if home else rng.choice(_STREET_NAMES),
        )

    def record(self, p: _Person, first_of_person: bool) -> SyntheticRecord:
        rng = self.rng
        first, last, email = p.first, p.last, p.email
        if not first_of_person:
            change = rng.random()
            if change < 0.15:
                last = " ".join(_typo(rng, w) for w in last.split())
            elif change < 0.3:
                first = _typo(rng, first)
            elif change < 0.4:
                first, last = last, first
            elif change < 0.55:
                first, last = _strip_accents(first), _strip_accents(last)
            if rng.random() < 0.1 and email:
                local, domain = email.split("@")
                email = f"{_typo(rng, local)}@{domain}"
            elif rng.random() < 0.15:
                email = None
        if p.country == "PL" and not first_of_person and not first.isascii() and rng.random() < 0.7:
            from anyascii import anyascii

            first, last = anyascii(first), anyascii(last)
        phone = p.mobile or p.landline
        if rng.random() < 0.15:
            phone = p.landline  # the home phone given instead of the mobile
        if not first_of_person and rng.random() < 0.1:
            phone = None
        types = _STREETS[p.country]
        kind = rng.randrange(2) * 2
        street_type = types[kind + rng.randrange(2)]
        line1 = (
            f"{p.number} {street_type} {p.street}"
            if p.country == "FR"
            else f"{street_type} {p.street}, {p.number}"
        )
        channel = rng.choice(_CHANNELS)
        system = "erp" if channel == "B2B" else _SYSTEMS[p.country]
        return SyntheticRecord(
            person=p.pid,
            source_system=system,
            sales_channel=channel,
            country_code=p.country,
            customer={
                "kind": "PERSON",
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone,
                "language": {"ES": "es", "FR": "fr", "IT": "it", "PL": "pl"}[p.country],
            },
            service_address={
                "line1": line1,
                "postal_code": p.postal_code,
                "city": p.city,
                "country_code": p.country,
            },
            phone_as_entered=(
                None
                if phone is None
                else phone
                if phone == PLACEHOLDER_PHONES[p.country]
                else _formats(phone, p.country, rng)
            ),
        )


def generate(
    people: int,
    seed: int = 7,
    *,
    family_share: float = 0.15,
    shared_contacts: float = 0.0,
    placeholders: float = 0.0,
) -> Iterator[SyntheticRecord]:
    """Records of ``people`` people (about 2.2 records each), families included, in a seeded order.

    ``shared_contacts``: the share of households whose members all give the head's e-mail and
    phone; ``placeholders``: the share of people who give the placeholder e-mail and phone. With
    both at 0 (the default) the records are those of earlier versions, seed for seed.
    """
    maker = _Maker(seed)
    rng = maker.rng
    made = 0
    while made < people:
        country = rng.choice(("ES", "ES", "FR", "IT", "PL"))
        head = maker.person(country)
        household = [head]
        if rng.random() < family_share:  # 2–4 people, one surname, one address and landline
            for _ in range(rng.randrange(1, 4)):  # no two members of a family share a first name
                taken = {member.first for member in household}
                household.append(maker.person(country, last=head.last, home=head, taken=taken))
            for member in household[1:]:
                member.mobile = None if rng.random() < 0.6 else member.mobile
            if shared_contacts and rng.random() < shared_contacts:  # one e-mail and phone for all
                for member in household[1:]:
                    member.email, member.mobile = head.email, head.mobile or head.landline
        for person in household:
            made += 1
            if placeholders and rng.random() < placeholders:
                person.email, person.mobile = PLACEHOLDER_EMAIL, PLACEHOLDER_PHONES[person.country]
            count = rng.choices((1, 2, 3, 4), weights=(30, 35, 20, 15))[0]
            for i in range(count):
                yield maker.record(person, i == 0)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_scores(truth: Iterable[tuple[Any, Any]]) -> tuple[float, float, int, int]:
    """``(precision, recall, predicted pairs, true pairs)`` of ``(person, cluster)`` per record.

    Pairs are counted within clusters (predicted) and within people (true), so a cluster holding
    two people costs precision, and a person spread over two clusters costs recall.
    """
    cells: Counter[tuple[Any, Any]] = Counter()
    people: Counter[Any] = Counter()
    clusters: Counter[Any] = Counter()
    for person, cluster in truth:
        cells[person, cluster] += 1
        people[person] += 1
        clusters[cluster] += 1
    both = sum(_pairs(n) for n in cells.values())
    predicted = sum(_pairs(n) for n in clusters.values())
    real = sum(_pairs(n) for n in people.values())
    precision = both / predicted if predicted else 1.0
    recall = both / real if real else 1.0
    return precision, recall, predicted, real

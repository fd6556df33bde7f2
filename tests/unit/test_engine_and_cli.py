from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

import adapters
import canonical
from adapters.base import SourceAdapter
from bench.handwritten_pyxis import HandwrittenPyxisMapper
from saleshub.cli import app
from saleshub.errors import FieldError, MappingError
from saleshub.mapping.expressions import ExpressionError, compile_expression
from saleshub.mapping.schema import mapping_file_schema
from tests.conftest import FIXTURE_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "contracts/samples"


def test_committed_mapping_schema_is_current_and_accepts_every_mapping_file() -> None:
    committed = json.loads((ROOT / "contracts/mapping-file.schema.json").read_text(encoding="utf-8"))
    assert committed == mapping_file_schema(), (
        "regenerate: saleshub mappings schema --output contracts/mapping-file.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(committed)
    validator = jsonschema.Draft202012Validator(committed)
    paths = sorted(FIXTURE_MAPPINGS.glob("*/*.yaml"))
    assert paths, f"no mapping files under {FIXTURE_MAPPINGS}"
    for path in paths:
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
        assert not errors, f"{path}: {errors[0].message}"


def test_public_names_are_exported() -> None:
    for module in (canonical, adapters):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


PYXIS_PAYLOADS = sorted(
    p for p in (SAMPLES / "pyxis").glob("0*.json") if not p.name.endswith(".expected.json")
)


@pytest.mark.parametrize("payload", PYXIS_PAYLOADS, ids=lambda p: p.stem)
def test_handwritten_baseline_agrees_with_the_engine(
    adapters: dict[str, SourceAdapter], payload: Path
) -> None:
    """The benchmark's baseline does the same work: equal output on every Pyxis golden sample."""
    body = payload.read_bytes()
    baseline = HandwrittenPyxisMapper(FIXTURE_MAPPINGS / "crosswalks").map(body)
    assert baseline == adapters["pyxis"].translate(body).mapped.order


def test_mapping_errors_trace_source_paths_and_mask_personal_data(adapters: dict[str, SourceAdapter]) -> None:
    body = (SAMPLES / "pyxis/90_rejected_unknown_codes.json").read_bytes()
    with pytest.raises(MappingError) as info:
        adapters["pyxis"].translate(body)
    by_target = {e.target: e for e in info.value.errors}
    assert by_target["lines[1].product_code"].source == "order.items[1].sku"
    assert by_target["lines[1].product_code"].value == "PX-999999"
    phone = by_target["customer.phone"]
    assert phone.personal and phone.value == "12"
    assert "'12'" not in str(phone) and "masked" in str(phone)
    assert "masked" in json.dumps(phone.as_dict())
    assert "pyxis/order@2026.11.1#" in str(info.value)


def test_validation_errors_point_back_to_the_source(adapters: dict[str, SourceAdapter]) -> None:
    document = json.loads((SAMPLES / "pyxis/01_es_in_store_created.json").read_text(encoding="utf-8"))
    document["order"]["items"][1]["qty"] = -2
    document["order"]["customer"]["email"] = "not-an-email"
    with pytest.raises(MappingError) as info:
        adapters["pyxis"].translate(json.dumps(document).encode())
    errors = {e.target: e for e in info.value.errors}
    assert errors["lines[1].quantity"].source == "order.items[1].qty"
    assert "greater than 0" in errors["lines[1].quantity"].rule
    assert errors["customer.email"].source == "order.customer.email"
    assert isinstance(errors["customer.email"], FieldError)


class TestExpressions:
    def test_allowed_constructs(self) -> None:
        expression = compile_expression(
            "round(a * b, 2) if a else concat(upper(c), '-', 1.5)", frozenset("abc")
        )
        assert expression.evaluate({"a": Decimal("1.005"), "b": 3, "c": "x"}) == Decimal("3.02")
        assert expression.evaluate({"a": None, "b": 3, "c": "x"}) == "X-1.5"
        assert compile_expression("x + 0.1", frozenset("x")).evaluate({"x": Decimal("0.2")}) == Decimal("0.3")

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("a.__class__", "Attribute is not allowed"),
            ("a[0]", "Subscript is not allowed"),
            ("eval('1')", "function 'eval' is not allowed"),
            ("(lambda: 1)()", "is not allowed"),
            ("[x for x in a]", "ListComp is not allowed"),
            ("upper(a, b=1)", "keyword arguments"),
            ("zz + 1", "unknown name 'zz'"),
            ("a +", "not a valid expression"),
            ("1 < a < 3", "chained comparisons"),
        ],
    )
    def test_refused_constructs(self, source: str, message: str) -> None:
        with pytest.raises(ExpressionError, match=message):
            compile_expression(source, frozenset({"a"}))

    def test_unused_bindings_are_reported(self) -> None:
        with pytest.raises(ExpressionError, match="never uses it"):
            compile_expression("a", frozenset({"a", "b"}))


class TestCli:
    def test_mappings_test_passes_on_every_golden_sample(self) -> None:
        result = CliRunner().invoke(
            app, ["mappings", "test", "--dir", str(FIXTURE_MAPPINGS), "--samples", str(SAMPLES)]
        )
        assert result.exit_code == 0, result.output
        assert " 0 failed" in result.output

    def test_mappings_test_shows_field_level_differences(self, tmp_path: Path) -> None:
        target = tmp_path / "pyxis"
        target.mkdir()
        for path in (SAMPLES / "pyxis").glob("01_*"):
            (target / path.name).write_bytes(path.read_bytes())
        expected = target / "01_es_in_store_created.expected.json"
        data = json.loads(expected.read_text(encoding="utf-8"))
        data["order"]["customer"]["language"] = "ca"
        expected.write_text(json.dumps(data), encoding="utf-8")
        result = CliRunner().invoke(
            app, ["mappings", "test", "--dir", str(FIXTURE_MAPPINGS), "--samples", str(tmp_path)]
        )
        assert result.exit_code == 1
        assert "order.customer.language" in result.output
        assert "0 passed, 1 failed" in result.output

    def test_preview_prints_the_canonical_order(self) -> None:
        payload = SAMPLES / "tempo/09_pl_warranty_iso_8859_2.xml"
        result = CliRunner().invoke(
            app, ["mappings", "preview", "tempo", str(payload), "--dir", str(FIXTURE_MAPPINGS)]
        )
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown["order"]["customer"]["last_name"] == "Wójcik-Łęcka"
        assert shown["mapping"]["label"].startswith("tempo/order@")
        assert isinstance(shown["fingerprint"], int)

    def test_preview_lists_every_error_and_exits_1(self) -> None:
        payload = SAMPLES / "tempo/90_rejected_bad_channel_and_amounts.xml"
        result = CliRunner().invoke(
            app, ["mappings", "preview", "tempo", str(payload), "--dir", str(FIXTURE_MAPPINGS)]
        )
        assert result.exit_code == 1
        assert "5 error(s)" in result.output

    def test_preview_of_an_unknown_system_lists_the_known_ones(self, tmp_path: Path) -> None:
        body = tmp_path / "x.json"
        body.write_text("{}", encoding="utf-8")
        result = CliRunner().invoke(
            app, ["mappings", "preview", "acme", str(body), "--dir", str(FIXTURE_MAPPINGS)]
        )
        assert result.exit_code == 2
        assert "known systems: erp, pyxis, tempo" in result.output

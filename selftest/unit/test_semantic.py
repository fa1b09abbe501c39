"""Comparing a definition with what an API returns, by meaning: filters as sets of terms, server fields ignored."""

from __future__ import annotations

from typing import Any

import pytest

from goldenpath.semantic import differences, normalize_filter, seconds, split_and

RUN_503 = 'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" ' \
          'AND metric.labels.response_code="503"'


# ---- builders ------------------------------------------------------------------------------

def condition(name: str = "503 Error Rate > 5%", threshold: float = 0.05, **extra: Any) -> dict[str, Any]:
    """One alert-policy condition in the definition's shape (REST JSON)."""
    return {"displayName": name,
            "conditionThreshold": {"filter": RUN_503, "comparison": "COMPARISON_GT", "thresholdValue": threshold,
                                   "duration": "300s", "trigger": {"count": 1}, **extra}}


def policy(*conditions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"displayName": "HTTP 503 Error Rate Alert", "combiner": "OR", "enabled": True,
            "conditions": list(conditions) or [condition()], **extra}


# ---- split_and -----------------------------------------------------------------------------

def test_split_and_returns_the_top_level_terms_stripped() -> None:
    assert split_and(RUN_503) == ['metric.type="run.googleapis.com/request_count"',
                                  'resource.type="cloud_run_revision"', 'metric.labels.response_code="503"']


def test_split_and_accepts_any_whitespace_around_and() -> None:
    assert split_and("a=1   AND\tb=2\nAND  c=3") == ["a=1", "b=2", "c=3"]
    assert split_and("  a=1 AND b=2  ") == ["a=1", "b=2"]


def test_split_and_keeps_and_inside_quotes_together() -> None:
    assert split_and('textPayload="x AND y" AND b=2') == ['textPayload="x AND y"', "b=2"]
    assert split_and("textPayload='x AND y' AND b=2") == ["textPayload='x AND y'", "b=2"]


def test_split_and_keeps_and_after_an_escaped_quote_inside_quotes() -> None:
    assert split_and(r'textPayload="say \" AND y" AND b=2') == [r'textPayload="say \" AND y"', "b=2"]


def test_split_and_keeps_parenthesised_groups_whole() -> None:
    assert split_and("(a=1 AND b=2) AND c=3") == ["(a=1 AND b=2)", "c=3"]
    assert split_and("(a=1 OR (b=2 AND d=4)) AND c=3") == ["(a=1 OR (b=2 AND d=4))", "c=3"]


def test_split_and_does_not_split_on_or_nor_on_a_word_containing_and() -> None:
    assert split_and("a=1 OR b=2") == ["a=1 OR b=2"]
    assert split_and("brand=ANDROID AND x=1") == ["brand=ANDROID", "x=1"]
    assert split_and("a=1 and b=2") == ["a=1 and b=2"]  # the operator is upper case in both languages


def test_split_and_of_nothing_is_nothing() -> None:
    assert split_and("") == [] and split_and("   ") == []


# ---- normalize_filter ----------------------------------------------------------------------

def test_spacing_around_operators_and_between_terms_is_ignored() -> None:
    assert normalize_filter('metric.type = "a"   AND  resource.type="b"') == \
        normalize_filter('metric.type="a" AND resource.type = "b"')


@pytest.mark.parametrize("op", ["=", "!=", ">=", "<=", ">", "<", ":", "=~", "!~"])
def test_every_operator_survives_normalisation(op: str) -> None:
    assert normalize_filter(f"httpRequest.status {op} 503") == frozenset({f"httpRequest.status{op}503"})


def test_double_single_and_no_quotes_are_the_same_value() -> None:
    assert normalize_filter('resource.type="cloud_run_revision"') == normalize_filter("resource.type='cloud_run_revision'")
    assert normalize_filter('resource.type="cloud_run_revision"') == normalize_filter("resource.type=cloud_run_revision")
    assert normalize_filter('resource.type="cloud_run_revision"') == frozenset({"resource.type=cloud_run_revision"})


def test_term_order_is_ignored() -> None:
    reordered = 'metric.labels.response_code="503" AND resource.type="cloud_run_revision" AND ' \
                'metric.type="run.googleapis.com/request_count"'
    assert normalize_filter(RUN_503) == normalize_filter(reordered)


def test_labels_and_label_are_the_same_spelling() -> None:
    assert normalize_filter('resource.labels.service_name="x"') == normalize_filter('resource.label.service_name="x"')
    assert normalize_filter('metric.labels.response_code="503"') == frozenset({"metric.label.response_code=503"})


def test_and_inside_quotes_is_one_term() -> None:
    assert normalize_filter('textPayload="a AND b"') == frozenset({"textPayload=a AND b"})
    assert normalize_filter('textPayload="a AND b"') != normalize_filter('textPayload="a" AND b')


def test_and_inside_parentheses_is_one_term() -> None:
    assert len(normalize_filter("(a=1 AND b=2) AND c=3")) == 2
    assert normalize_filter("(a=1 AND b=2) AND c=3") != normalize_filter("a=1 AND b=2 AND c=3")


@pytest.mark.parametrize("other", [
    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
    'AND metric.labels.response_code="500"',                                         # another value
    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision"',  # a term fewer
    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
    'AND metric.labels.response_code!="503"',                                        # another operator
    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
    'AND metric.labels.response_class="503"',                                        # another field
    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
    'AND metric.labels.response_code="503" AND resource.labels.service_name="x"',    # a term more
])
def test_a_genuinely_different_term_is_detected(other: str) -> None:
    assert normalize_filter(RUN_503) != normalize_filter(other)


def test_a_term_that_is_not_a_comparison_keeps_its_words() -> None:
    assert normalize_filter("NOT   severity>=ERROR AND a=1") == frozenset({"NOT severity>=ERROR", "a=1"})


def test_quoted_value_keeps_its_inner_spacing() -> None:
    assert normalize_filter('textPayload="a  b"') != normalize_filter('textPayload="a b"')


# ---- seconds -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("300s", 300.0), ("300.000s", 300.0), (300, 300.0), (0.5, 0.5),
                                             ("1.5s", 1.5), ("5m", None), ("s", None), (None, None)])
def test_seconds(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected


# ---- differences: what is not a difference -------------------------------------------------

def test_identical_resources_have_no_differences() -> None:
    assert differences(policy(), policy()) == []


def test_server_added_fields_are_ignored() -> None:
    served = policy(
        condition(),
        name="projects/netra-staging/alertPolicies/123",
        creationRecord={"mutateTime": "2025-01-01T12:00:00Z", "mutatedBy": "gate@netra-staging.iam"},
        mutationRecord={"mutateTime": "2025-01-01T12:00:00Z"},
        notificationChannels=["projects/netra-staging/notificationChannels/EMAIL_ALERT"],
    )
    served["conditions"][0]["name"] = "projects/netra-staging/alertPolicies/123/conditions/456"
    assert differences(policy(), served) == []


@pytest.mark.parametrize("default", [0, 0.0, "", False, [], {}])
def test_proto3_defaults_the_api_leaves_out_equal_the_definitions_value(default: Any) -> None:
    assert differences({"displayName": "x", "field": default}, {"displayName": "x"}) == []


def test_nested_defaults_left_out_are_not_differences() -> None:
    expected = {"yAxis": {"label": "", "scale": "LINEAR"}, "trigger": {"count": 1, "percent": 0}}
    assert differences(expected, {"yAxis": {"scale": "LINEAR"}, "trigger": {"count": 1}}) == []


def test_an_omitted_message_of_defaults_equals_none() -> None:
    assert differences({"label": "", "count": 0}, None, "yAxis") == []


@pytest.mark.parametrize("default", ["", False, [], {}])
def test_a_default_found_as_null_is_no_difference(default: Any) -> None:
    assert differences({"field": default}, {"field": None}) == []


def test_a_zero_found_as_null_is_no_difference() -> None:
    assert differences({"field": 0}, {"field": None}) == []
    assert differences(0, None, "field") == []


def test_an_omitted_nested_message_of_defaults_is_no_difference() -> None:
    assert differences({"yAxis": {"label": ""}}, {}) == []


def test_durations_compare_by_seconds() -> None:
    assert differences({"duration": "300s"}, {"duration": "300.000s"}) == []
    assert differences({"alignmentPeriod": "60s"}, {"alignmentPeriod": "60.0s"}) == []
    assert differences({"alertStrategy": {"autoClose": "86400s"}}, {"alertStrategy": {"autoClose": "86400.000s"}}) == []


def test_a_different_duration_is_a_difference() -> None:
    assert differences({"duration": "300s"}, {"duration": "600s"}) == ['duration: expected "300s", found "600s"']


def test_a_duration_spelling_outside_duration_fields_is_compared_as_text() -> None:
    assert differences({"content": "300s"}, {"content": "300.000s"}) != []


@pytest.mark.parametrize("expected, found", [(5, 5.0), (5.0, 5), (150, 150.0), (0.05, 0.05), (5, "5")])
def test_numbers_compare_by_value(expected: Any, found: Any) -> None:
    assert differences({"thresholdValue": expected}, {"thresholdValue": found}) == []


def test_group_by_fields_order_is_ignored() -> None:
    expected = {"groupByFields": ["resource.label.service_name", "resource.label.revision_name"]}
    found = {"groupByFields": ["resource.label.revision_name", "resource.label.service_name"]}
    assert differences(expected, found) == []


def test_group_by_fields_contents_still_count() -> None:
    expected = {"groupByFields": ["resource.label.service_name", "resource.label.revision_name"]}
    found = {"groupByFields": ["resource.label.service_name"]}
    [line] = differences(expected, found)
    assert line.startswith("groupByFields: expected ")
    assert "resource.label.revision_name" in line


def test_notification_channels_are_a_set() -> None:
    a, b = "projects/p/notificationChannels/1", "projects/p/notificationChannels/2"
    assert differences({"notificationChannels": [a, b]}, {"notificationChannels": [b, a]}) == []
    [line] = differences({"notificationChannels": [a, b]}, {"notificationChannels": [a]})
    assert line.startswith("notificationChannels: expected") and b in line


def test_filters_compare_by_meaning() -> None:
    respelled = "metric.labels.response_code = '503'  AND resource.type=cloud_run_revision AND " \
                "metric.type = \"run.googleapis.com/request_count\""
    assert differences({"filter": RUN_503}, {"filter": respelled}) == []
    assert differences({"denominatorFilter": RUN_503}, {"denominatorFilter": respelled}) == []


def test_a_different_filter_is_reported_with_both_texts() -> None:
    [line] = differences({"filter": RUN_503}, {"filter": RUN_503.replace('"503"', '"500"')})
    assert line.startswith("filter: expected ")
    assert 'response_code=\\"503\\"' not in line  # shown as text, not repr-escaped twice
    assert '"503"' in line and '"500"' in line


def test_a_filter_spelled_alike_outside_filter_fields_is_compared_as_text() -> None:
    assert differences({"content": "a=1 AND b=2"}, {"content": "b=2 AND a=1"}) != []


# ---- differences: lists of named items -----------------------------------------------------

def test_conditions_are_matched_by_display_name_not_position() -> None:
    first, second = condition("first", 0.1), condition("second", 0.2)
    assert differences(policy(first, second), policy(second, first)) == []


def test_a_missing_named_item_is_reported_as_missing() -> None:
    first, second = condition("first", 0.1), condition("second", 0.2)
    assert differences(policy(first, second), policy(second)) == ["conditions[first]: missing"]


def test_widgets_are_matched_by_title() -> None:
    expected = {"widgets": [{"title": "p95", "xyChart": {"yAxis": {"label": "ms"}}},
                            {"title": "503", "xyChart": {"yAxis": {"label": ""}}}]}
    found = {"widgets": [{"title": "503", "xyChart": {"yAxis": {}}},
                         {"title": "p95", "xyChart": {"yAxis": {"label": "s"}}}]}
    assert differences(expected, found) == ['widgets[p95].xyChart.yAxis.label: expected "ms", found "s"']


def test_a_changed_threshold_is_reported_with_its_path_and_values() -> None:
    drifted = policy(condition(threshold=0.5))
    assert differences(policy(), drifted) == [
        "conditions[503 Error Rate > 5%].conditionThreshold.thresholdValue: expected 0.05, found 0.5"]


def test_nested_path_text_names_every_level() -> None:
    expected = policy(condition(aggregations=[{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_RATE"}]))
    found = policy(condition(aggregations=[{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MEAN"}]))
    assert differences(expected, found) == [
        "conditions[503 Error Rate > 5%].conditionThreshold.aggregations[0].perSeriesAligner: "
        'expected "ALIGN_RATE", found "ALIGN_MEAN"']


def test_the_starting_path_prefixes_every_line() -> None:
    assert differences({"count": 1}, {"count": 2}, "trigger") == ["trigger.count: expected 1, found 2"]


def test_unnamed_lists_compare_by_position_and_length() -> None:
    assert differences({"aggregations": [{"a": 1}]}, {"aggregations": [{"a": 1}, {"a": 2}]}) == [
        "aggregations: expected 1 item(s), found 2"]
    assert differences({"aggregations": [{"a": 1}, {"a": 2}]}, {"aggregations": [{"a": 2}, {"a": 1}]}) == [
        "aggregations[0].a: expected 1, found 2", "aggregations[1].a: expected 2, found 1"]


def test_a_missing_field_that_matters_is_found_nothing() -> None:
    assert differences({"combiner": "OR"}, {}) == ['combiner: expected "OR", found nothing']


def test_a_changed_boolean_is_reported() -> None:
    assert differences(policy(), policy(enabled=False)) == ["enabled: expected True, found False"]


def test_a_dict_found_as_something_else_is_reported() -> None:
    [line] = differences({"trigger": {"count": 1}}, {"trigger": "count=1"})
    assert line.startswith("trigger: expected {'count': 1}, found")


def test_long_values_are_shortened() -> None:
    [line] = differences({"content": "x" * 400}, {"content": "y"})
    assert len(line) < 200 and "…" in line

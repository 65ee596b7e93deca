"""A password never survives masking or URL parsing, in any shape an operator can type it."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from autopr.config import ConfigurationError, Settings, parse_database_url
from autopr_migrate.masking import MaskingFilter, forget_secrets, mask_secrets, redact_credentials

# What operators put in passwords, the URL's own delimiters and spaces included.
PASSWORDS = st.text(
    alphabet=st.sampled_from("abcXYZ019-_.~!$&'()*+,;@:/?#%= "), min_size=6, max_size=24
).filter(lambda pw: pw.strip() == pw and any(c.isalnum() for c in pw))

SHAPES = {
    "url": "postgresql://app:{pw}@db.internal:5432/autopr",
    "url-with-driver": "postgresql+psycopg2://app:{pw}@db.internal/autopr?sslmode=require",
    "one-slash": "postgresql:/app:{pw}@db.internal/autopr",
    "no-colon": "postgres//app:{pw}@db.internal/autopr",
    "no-scheme": "app:{pw}@db.internal:5432/autopr",
    "no-user": "postgresql://:{pw}@db.internal/autopr",
    "libpq": "host=db.internal user=app password='{pw_libpq}' dbname=autopr",
    "libpq-bare": "host=db.internal password={pw_bare} dbname=autopr",
    "query": "postgresql://app@db.internal/autopr?sslmode=require&password={pw_query}",
    "in-a-sentence": 'could not connect to "postgresql://app:{pw}@db.internal/autopr": refused',
    "json": '{{"url": "postgresql://app:{pw}@db.internal/autopr", "who": "ops@example.com"}}',
}


def _typed(shape: str, password: str) -> str:
    return SHAPES[shape].format(
        pw=password,
        pw_libpq=password.replace("\\", "\\\\").replace("'", "\\'"),
        pw_bare=password.replace(" ", ""),
        pw_query=quote(password, safe=""),
    )


@given(password=PASSWORDS, shape=st.sampled_from(sorted(SHAPES)))
def test_no_shape_lets_a_password_through_masking(password: str, shape: str) -> None:
    if shape == "libpq-bare":
        password = password.replace(" ", "")
    if shape == "query":
        password = quote(password, safe="")
    # In free text, "app:@000 0@db" cannot tell where a password with both an "@" and a space
    # ends (a URL typed so is refused at parse time, and quoted without its userinfo).
    assume(not ("@" in password and " " in password))
    text = _typed(shape, password)
    skeleton = text.replace(password, "***")
    assume(password not in skeleton)  # a password made of the text around it shows anyway
    assert password not in mask_secrets(text)


@given(
    password=PASSWORDS,
    shape=st.sampled_from(
        ["url", "url-with-driver", "one-slash", "no-colon", "no-scheme", "no-user"]
    ),
)
def test_parsing_a_url_never_shows_its_password(password: str, shape: str) -> None:
    raw = _typed(shape, password)
    assume(password not in raw.replace(password, "***"))
    forget_secrets()  # each example on its own: an earlier one's password must not help
    try:
        settings_ = Settings.from_env({"DATABASE_URL": raw})
    except ConfigurationError as exc:
        message = str(exc)
        assert password not in message and "\n" not in message
        for fragment in (part for part in password.split("@") if len(part) >= 4):
            assert fragment not in message.replace("db.internal", "")
        return
    shown = repr(settings_) + settings_.masked_database_url
    assert password not in shown


@given(password=PASSWORDS)
def test_a_parsed_password_is_masked_wherever_a_driver_quotes_it(password: str) -> None:
    assume(len(password.strip()) >= 4)
    forget_secrets()
    url = parse_database_url(f"postgresql://app:{quote(password, safe='')}@db.internal/autopr")
    assert url.password == password
    driver_says = f'FATAL:  password "{password}" was refused (connection to server failed)'
    assert password not in mask_secrets(driver_says)


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:pa@ss-Tail77@127.0.0.1:5432/autopr",
        "postgresql://app:pa@ss/Tail77@127.0.0.1/autopr",
        "postgresql://app:S3cret@Tail77@db/autopr?application_name=x",
    ],
)
def test_an_unencoded_at_sign_is_refused_with_the_encoding_advice(raw: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_database_url(raw)
    message = str(refused.value)
    assert "percent-encode" in message and "%40 for an at sign" in message
    assert "Tail77" not in message and "pa@ss" not in message and "S3cret" not in message


def test_urls_without_a_password_stay_readable() -> None:
    for text in (
        "postgresql://postgres@127.0.0.1:5432/autopr",
        "sqlite:///var/lib/autopr.db",
        "http://127.0.0.1:8000/health",
        "approved by ops@example.com at 12:30",
        "at 12:30 ops@example.com approved; note: ask dev@example.com",
    ):
        assert mask_secrets(text) == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("app:pass word:xyz@db", "pass word"),
        ("1234:hunter two@db", "hunter two"),
        ("password: correct horse battery", "horse battery"),
        ("password => 's3cret-77'", "s3cret-77"),
        ("host=db password=&00000 dbname=autopr", "&00000"),
        ("app://0000abc@db.internal/autopr", "0000abc"),
        ("app:0000 :@db.internal/autopr", "0000 :"),
    ],
)
def test_shapes_an_earlier_masker_missed(text: str, secret: str) -> None:
    assert secret not in mask_secrets(text)


def test_our_own_advice_survives_masking_unharmed() -> None:
    advice = (
        "percent-encode the characters @ : / ? # % and spaces in the user name and "
        "password (%40 for an at sign)"
    )
    text = f"X has an unencoded at sign in its user name or password (postgresql://***/d); {advice}"
    assert mask_secrets(text) == text


def test_long_hostile_input_is_masked_whole() -> None:
    password = "Zq9-long-secret"
    noise = "a://b:" * 50_000 + " " + "x:y@z " * 50_000 + "password=" * 1000
    text = f"{noise} postgresql://app:{password}@db/autopr {noise}"
    assert password not in mask_secrets(text)
    assert mask_secrets("a" * 1_000_000) == "a" * 1_000_000


def test_an_unparsable_url_is_quoted_without_anything_before_its_last_at() -> None:
    assert redact_credentials("postgres//app:pa@ss@db/autopr") == "postgres//***@db/autopr"
    assert redact_credentials("app:p//w@db") == "***@db"
    assert redact_credentials("pa ss word@db") == "***@db"
    # Without an "@", "app:secret" parses as a host and a port: the authority goes too.
    assert redact_credentials("postgresql://app:Tr0ub4dor&3/autopr") == "postgresql://***/autopr"
    assert redact_credentials("postgresql://app:s3cret") == "postgresql://***"


def test_a_malformed_log_call_is_left_to_the_handler_not_raised(caplog) -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "after: %d", ("x",), None)
    assert MaskingFilter().filter(record) is True  # logging reports it, as without the filter


def test_log_records_and_their_tracebacks_are_masked() -> None:
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "connecting to %s",
        ("postgresql://app:Hidden-77@db/autopr",),
        None,
    )
    try:
        raise RuntimeError("password=Hidden-88 refused")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    MaskingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "Hidden-77" not in formatted and "Hidden-88" not in formatted

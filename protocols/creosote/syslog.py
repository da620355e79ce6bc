"""Syslog as creosote reads it: RFC 3164 and RFC 5424 datagrams into fields (pure)."""

from __future__ import annotations

import re
from typing import Literal, TypedDict

from protocols.errors import LocalProtocolError

# --------------------------------------------------------------------------- syslog

FACILITY_USER = 1
SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")  # RFC 5424 §6.2.1

SyslogFormat = Literal["rfc3164", "rfc5424"]
StructuredData = dict[str, dict[str, str]]


class SyslogFields(TypedDict):
    """What ``parse_syslog`` found; a missing header field (or RFC 5424 ``-``) is ``None``."""

    format: SyslogFormat
    facility: int
    severity: int
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: StructuredData | None
    message: str


_PRI = re.compile(r"<([0-9]{1,3})>")
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
# RFC 3164 §4.1.2 says "Mmm dd hh:mm:ss" with a space-padded day; real senders also
# zero-pad or don't pad the day, add a year or fractions, or send RFC 3339 (rsyslog).
_RFC3164_HEADER = re.compile(
    rf"(?P<timestamp>{_MONTH} {{1,2}}\d{{1,2}}(?: \d{{4}})? \d{{2}}:\d{{2}}:\d{{2}}(?:\.\d{{1,9}})?|{_RFC3339}) "
)
# A tag is "app:" or "app[pid]:"; RFC 3164 §5.3 only suggests alphanumerics, but
# real tags hold "-", "." and "/" (postfix/smtpd[42]:).
_TAG = re.compile(r"(?P<app>[^\s\[\]:]{1,48})(?:\[(?P<procid>[^\s\]]{1,128})\])?:")
_RFC5424_HEADER = re.compile(
    rf"1 (?P<timestamp>-|{_RFC3339}) (?P<hostname>\S{{1,255}}) (?P<app_name>\S{{1,48}}) "
    r"(?P<procid>\S{1,128}) (?P<msgid>\S{1,32}) "
)
_SD_NAME = re.compile(r'[^ =\]"]{1,32}')  # SD-NAME, RFC 5424 §6.3: printable, no space = ] "
_SD_VALUE = re.compile(r'="((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_ESCAPE = re.compile(r'\\(["\\\]])')  # only these three; any other backslash is literal (§6.3.3)
_BOM = "\ufeff"


def parse_syslog(text: str) -> SyslogFields | None:
    """Parse an RFC 5424 or RFC 3164 message; ``None`` if it does not start with a PRI.

    Tolerant like a real collector: a PRI with no valid header (Python's
    ``SysLogHandler`` sends ``<PRI>message\\x00``) is RFC 3164 with no timestamp
    or host, the whole rest being the content (RFC 3164 §4.3.2). Trailing NUL,
    CR and LF are framing, not message, and are stripped from ``message``.
    """
    match = _PRI.match(text)
    if match is None or int(match.group(1)) > 191:  # facility 23, severity 7: RFC 5424 §6.2.1
        return None
    facility, severity = divmod(int(match.group(1)), 8)
    rest = text[match.end() :]
    return _parse_rfc5424(rest, facility, severity) or _parse_rfc3164(rest, facility, severity)


def _parse_rfc5424(rest: str, facility: int, severity: int) -> SyslogFields | None:
    header = _RFC5424_HEADER.match(rest)
    if header is None:
        return None
    parsed = _parse_structured_data(rest, header.end())
    if parsed is None:
        return None
    structured_data, end = parsed
    if end < len(rest) and rest[end] != " ":
        return None
    message = rest[end + 1 :].removeprefix(_BOM)  # §6.4: MSG may begin with a BOM to say "UTF-8"
    # One groups() call, not five group() calls: this runs once per datagram.
    timestamp, hostname, app_name, procid, msgid = header.groups()
    return SyslogFields(
        format="rfc5424",
        facility=facility,
        severity=severity,
        timestamp=None if timestamp == "-" else timestamp,  # NILVALUE, RFC 5424 §6
        hostname=None if hostname == "-" else hostname,
        app_name=None if app_name == "-" else app_name,
        procid=None if procid == "-" else procid,
        msgid=None if msgid == "-" else msgid,
        structured_data=structured_data,
        message=_strip_framing(message),
    )


def _parse_structured_data(text: str, pos: int) -> tuple[StructuredData | None, int] | None:
    """SD at ``pos``: ``-`` or ``[id k="v" ...]...``; the elements and where they end, None if malformed."""
    if text.startswith("-", pos):
        return None, pos + 1
    elements: StructuredData = {}
    while text.startswith("[", pos):
        element = _parse_sd_element(text, pos + 1)
        if element is None:
            return None
        sd_id, params, pos = element
        # A repeated SD-ID or PARAM-NAME keeps its last value, as rsyslog does; `text` keeps the original.
        elements.setdefault(sd_id, {}).update(params)
    return (elements, pos) if elements else None


def _parse_sd_element(text: str, pos: int) -> tuple[str, dict[str, str], int] | None:
    sd_id = _SD_NAME.match(text, pos)
    if sd_id is None:
        return None
    params: dict[str, str] = {}
    pos = sd_id.end()
    while text.startswith(" ", pos):
        name = _SD_NAME.match(text, pos + 1)
        value = _SD_VALUE.match(text, name.end()) if name else None
        if name is None or value is None:
            return None
        params[name.group()] = _SD_ESCAPE.sub(r"\1", value.group(1))
        pos = value.end()
    if not text.startswith("]", pos):
        return None
    return sd_id.group(), params, pos + 1


def _parse_rfc3164(rest: str, facility: int, severity: int) -> SyslogFields:
    header = _RFC3164_HEADER.match(rest)
    if header is None:
        hostname, app_name, procid, message = None, None, None, rest
    else:
        hostname, app_name, procid, message = _split_host_and_tag(rest[header.end() :])
    return SyslogFields(
        format="rfc3164",
        facility=facility,
        severity=severity,
        timestamp=header.group("timestamp") if header else None,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=None,
        structured_data=None,
        message=_strip_framing(message),
    )


def _split_host_and_tag(body: str) -> tuple[str | None, str | None, str | None, str]:
    """``host tag[pid]: msg``; local senders (``/dev/log`` style) leave the host out."""
    first, _, after = body.partition(" ")
    tag = _TAG.fullmatch(first)
    if tag is not None:
        return None, tag.group("app"), tag.group("procid"), after
    tag_token, _, message = after.partition(" ")
    tag = _TAG.fullmatch(tag_token)
    if tag is None:
        return first, None, None, after
    return first, tag.group("app"), tag.group("procid"), message


def _strip_framing(message: str) -> str:
    return message.rstrip("\x00\r\n")


def encode_pri(facility: int, severity: int) -> str:
    """The ``<PRI>`` prefix for a facility (0-23) and severity (0-7)."""
    if not (0 <= facility <= 23 and 0 <= severity <= 7):
        raise LocalProtocolError(f"no PRI for facility {facility}, severity {severity}")
    return f"<{facility * 8 + severity}>"

"""The request bodies of the VDX-compatible service and the checks on their fields.

The models are strict (no type coercion) and ignore unknown fields; times stay strings so that a too-long
year (code 25) can be told from any other bad value (code 10). The checks after the models are the
rules a schema can not say: start before end, unique additional-information keys, distinct PINs.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.video.local.clock import VdxTimeError, parse_vdx_time
from hub.video.local.errors import VdxError, _invalid

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


GuestMicrophone = Literal["muted", "off", "on"]
MeetingType = Literal["NORMAL", "POOL"]
VmrType = Literal["conference", "lecture"]
ViewType = Literal[
    "one_main_zero_pips", "one_main_seven_pips", "one_main_twentyone_pips", "two_mains_twentyone_pips",
    "four_mains_zero_pips", "five_mains_seven_pips", "one_main_thirtythree_pips", "nine_mains_zero_pips",
    "sixteen_mains_zero_pips",
]
VmrQuality = Literal["sd", "hd", "fullhd"]
Pin = Annotated[int, Field(ge=1000, le=999_999_999)]
_STRICT = ConfigDict(strict=True, extra="ignore")


class AdditionalInformation(BaseModel):
    """One `additionalInformationType` entry."""

    model_config = _STRICT
    key: str = Field(min_length=1, max_length=100)
    value: str = Field(max_length=100)


class _MeetingBody(BaseModel):
    """Fields shared by create-meeting and update-meeting. Times stay strings: VDX codes 10/25 differ."""

    model_config = _STRICT
    subject: str = Field(max_length=100)
    startTime: str
    endTime: str
    description: str | None = Field(None, max_length=500)
    projectCode: str | None = Field(None, max_length=100)
    organizedByEmail: str | None = None
    labels: list[str] | None = None
    additionalInformation: list[AdditionalInformation] | None = None

    @field_validator("subject")
    @classmethod
    def _subject_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class CreateMeetingRequest(_MeetingBody):
    """`create-meeting`. Template-related fields override the default template when present."""

    uuid: str | None = None
    externalId: str | None = Field(None, min_length=1, max_length=200)
    maxParticipants: int | None = Field(None, ge=0, le=2**31 - 1)
    endMeetingOnEndTime: bool | None = None
    schedulingTemplateId: int | None = None
    meetingType: MeetingType = "NORMAL"
    guestMicrophone: GuestMicrophone = "on"
    guestPinRequired: bool = False
    schedulingInfoReservationId: str | None = None
    uriWithoutDomain: str | None = Field(None, min_length=1, max_length=100)
    guestPin: Pin | None = None
    hostPin: Pin | None = None
    callType: str | None = None
    vmrType: VmrType | None = None
    hostView: ViewType | None = None
    guestView: ViewType | None = None
    vmrQuality: VmrQuality | None = None
    enableOverlayText: bool | None = None
    guestsCanPresent: bool | None = None
    forcePresenterIntoMain: bool | None = None
    forceEncryption: bool | None = None
    muteAllGuests: bool | None = None


class UpdateMeetingRequest(_MeetingBody):
    """`update-meeting` (PUT): a full replacement of the user-editable fields."""


class PatchMeetingRequest(BaseModel):
    """`patch-meeting`: absent fields are kept, null deletes. `model_fields_set` tells absent from null."""

    model_config = _STRICT
    subject: str | None = Field(None, max_length=100)
    startTime: str | None = None
    endTime: str | None = None
    description: str | None = Field(None, max_length=500)
    projectCode: str | None = Field(None, max_length=100)
    organizedByEmail: str | None = None
    labels: list[str] | None = None
    guestMicrophone: GuestMicrophone | None = None
    guestPinRequired: bool | None = None
    guestPin: Pin | None = None
    hostPin: Pin | None = None
    additionalInformation: list[AdditionalInformation] | None = None
    callType: str | None = None

    @field_validator("subject")
    @classmethod
    def _subject_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _validated(model: type[_ModelT], data: dict[str, Any]) -> _ModelT:
    """Validate a JSON object against a request model, turning pydantic's errors into VDX code 10."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_describe_errors(exc.errors())) from exc


def _describe_errors(errors: Any) -> str:
    """'field.path: message' for each problem, so the caller sees which field was wrong."""
    parts = []
    for err in errors:
        location = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{location}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _time(field_name: str, value: str) -> datetime:
    """Parse a date-time input; a year longer than 4 digits is VDX code 25, anything else wrong is 10."""
    try:
        return parse_vdx_time(value)
    except VdxTimeError as exc:
        code = "25" if exc.year_too_long else "10"
        raise VdxError(400, code, f"{field_name}: {exc}") from exc


def _check_interval(start: datetime, end: datetime) -> None:
    if start >= end:
        raise _invalid("startTime must be before endTime")


def _check_additional_information(items: list[AdditionalInformation] | None) -> None:
    keys = [item.key for item in items or ()]
    if len(keys) != len(set(keys)):
        raise VdxError(400, "35", "Additional info keys not unique for meeting.")


def _check_email(value: str | None) -> str | None:
    """A filled organizedByEmail must look like an e-mail address; an empty one counts as absent."""
    if not value:
        return None
    if len(value) > 45 or not _EMAIL.match(value):
        raise _invalid("organizedByEmail: must be an e-mail address of at most 45 characters")
    return value


def _check_distinct_pins(guest: int | None, host: int | None) -> None:
    if guest is not None and guest == host:
        raise _invalid("guestPin and hostPin must differ")


def _canonical_uuid(value: str, what: str = "uuid") -> str:
    if not isinstance(value, str) or not _UUID.match(value):
        raise _invalid(f"{what}: '{value}' is not a valid uuid")
    return value.lower()

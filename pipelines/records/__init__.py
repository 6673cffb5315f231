"""Coded electronic records (GP2GP EHR Extract, GP Connect STU3, FHIR R4, CSV) read into one event model."""

from .detect import READERS, Reader, detect, read_record
from .errors import RecordError, RecordErrorCode, UnknownRecordFormat
from .model import CodedEvent, CodedRecord, Coding, record_from_json, record_to_json

__all__ = [
    "READERS",
    "CodedEvent",
    "CodedRecord",
    "Coding",
    "Reader",
    "RecordError",
    "RecordErrorCode",
    "UnknownRecordFormat",
    "detect",
    "read_record",
    "record_from_json",
    "record_to_json",
]

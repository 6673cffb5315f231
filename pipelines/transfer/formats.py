"""The forms a transfer pack takes; apart from pack.py so that building the command line imports none of it."""

FORMATS = ("7z", "iso", "usb", "print", "ndr")
MEDIA_FORMATS = ("7z", "iso", "usb")  # the encrypted ones, which take a passphrase and a media size

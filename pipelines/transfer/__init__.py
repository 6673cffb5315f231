"""Transfer packs: the paper-only remainder of a record, signed, encrypted and written to disc, stick or file."""

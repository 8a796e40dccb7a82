"""Reading: a DICOM's bytes to its header, its stored pixels and the mapping of those to Hounsfield units.

``elements`` walks the plain files of the competition without pydicom, ``header`` flattens either
reader's elements into manifest columns, ``dicom`` decodes the pixels (pydicom for everything the
fast path does not handle) and holds the header fix for signed data stored as unsigned.
"""

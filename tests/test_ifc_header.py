"""One IFC header check (twin.ifc_header) behind the CLI's reader and the dashboard's upload."""

from __future__ import annotations

import pytest

from dashboard.uploads import UploadError, check_ifc
from models_bim.errors import IfcReadError
from models_bim.load import check_header

TRAILER = b"DATA;\n#1=IFCPERSON($,$,'x',$,$,$,$,$);\nENDSEC;\nEND-ISO-10303-21;\n"
HEAD = b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\nFILE_SCHEMA(('%s'));\nENDSEC;\n"


@pytest.mark.parametrize("head", [
    b"plain text, not a model\n",
    b"<?xml version='1.0'?><ifcXML/>",
    b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\nENDSEC;\n",
    HEAD % b"CONFIG_CONTROL_DESIGN",
])
def test_the_reader_and_the_upload_refuse_a_header_alike(tmp_path, head):
    path = tmp_path / "x.ifc"
    path.write_bytes(head + TRAILER)
    with pytest.raises(IfcReadError) as read:
        check_header(path)
    with pytest.raises(UploadError) as upload:
        check_ifc(head + TRAILER)
    assert str(read.value) == str(upload.value)


def test_a_bom_and_lower_case_are_read_alike(tmp_path):
    blob = b"\xef\xbb\xbf\n" + (HEAD % b"ifc4").replace(b"ISO-10303-21;", b"iso-10303-21 ;") + TRAILER
    path = tmp_path / "x.ifc"
    path.write_bytes(blob)
    check_header(path)
    assert check_ifc(blob) == "IFC4"

"""The vcard-temp ↔ vCard4 mapping (xmppd.xmpp.vcard4), Prosody's vcard_legacy one."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppd.xmpp import vcard4 as v4
from xmppd.xmpp.stanza import from_xml, to_xml

TEMP = """<vCard xmlns='vcard-temp'>
  <FN>Alice Liddell</FN>
  <N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN><MIDDLE>P</MIDDLE></N>
  <NICKNAME>Ally</NICKNAME>
  <URL>https://alice.example</URL>
  <BDAY>1852-05-04</BDAY>
  <TITLE>Explorer</TITLE><ROLE>Lead</ROLE>
  <EMAIL><INTERNET/><HOME/><USERID>alice@home.example</USERID></EMAIL>
  <EMAIL><INTERNET/><USERID>alice@example.org</USERID></EMAIL>
  <TEL><WORK/><NUMBER>+44 1865 000</NUMBER></TEL>
  <ADR><HOME/><STREET>1 Rabbit Hole</STREET><LOCALITY>Oxford</LOCALITY><CTRY>UK</CTRY></ADR>
  <JABBERID>alice@wonderland.example</JABBERID>
  <ORG><ORGNAME>Wonderland</ORGNAME><ORGUNIT>Tea party</ORGUNIT></ORG>
  <DESC>Curiouser and curiouser</DESC>
  <PHOTO><TYPE>image/png</TYPE><BINVAL>AAAA</BINVAL></PHOTO>
  <GEO><LAT>51.75</LAT><LON>-1.25</LON></GEO>
</vCard>"""
V = "{urn:ietf:params:xml:ns:vcard-4.0}"


def test_temp_to_vcard4_fields():
    card = v4.temp_to_vcard4(from_xml(TEMP))
    assert card.tag == V + "vcard"
    assert card.findtext(f"{V}fn/{V}text") == "Alice Liddell"
    assert card.findtext(f"{V}n/{V}surname") == "Liddell"
    assert card.findtext(f"{V}n/{V}given") == "Alice"
    assert card.findtext(f"{V}n/{V}additional") == "P"
    assert card.findtext(f"{V}nickname/{V}text") == "Ally"
    assert card.findtext(f"{V}url/{V}uri") == "https://alice.example"
    assert card.findtext(f"{V}bday/{V}date") == "1852-05-04"
    assert card.findtext(f"{V}title/{V}text") == "Explorer"
    assert card.findtext(f"{V}role/{V}text") == "Lead"
    emails = card.findall(V + "email")
    assert [e.findtext(V + "text") for e in emails] == ["alice@home.example", "alice@example.org"]
    assert emails[0].findtext(f"{V}parameters/{V}type/{V}text") == "home"
    assert emails[1].find(V + "parameters") is None
    tel = card.find(V + "tel")
    assert tel.findtext(V + "uri") == "tel:+44 1865 000"
    assert tel.findtext(f"{V}parameters/{V}type/{V}text") == "work"
    adr = card.find(V + "adr")
    assert (adr.findtext(V + "street"), adr.findtext(V + "locality"), adr.findtext(V + "country")) \
        == ("1 Rabbit Hole", "Oxford", "UK")
    assert adr.find(V + "pobox") is None
    assert card.findtext(f"{V}impp/{V}uri") == "xmpp:alice@wonderland.example"
    assert card.findtext(f"{V}org/{V}text") == "Wonderland"
    assert card.findtext(f"{V}note/{V}text") == "Curiouser and curiouser"
    # no photo in vCard4 (the avatar is XEP-0084's), nothing for GEO
    assert card.find(V + "photo") is None and card.find(V + "geo") is None


def test_round_trip_keeps_mapped_fields():
    vt = from_xml(TEMP)
    back = v4.vcard4_to_temp(v4.temp_to_vcard4(vt))
    for path in ("FN", "N/FAMILY", "N/GIVEN", "NICKNAME", "URL", "BDAY", "TITLE", "ROLE",
                 "TEL/NUMBER", "ADR/STREET", "JABBERID", "ORG/ORGNAME", "DESC"):
        p = "/".join("{vcard-temp}" + s for s in path.split("/"))
        assert back.findtext(p) == vt.findtext(p), path
    assert [e.findtext("{vcard-temp}USERID") for e in back.findall("{vcard-temp}EMAIL")] \
        == ["alice@home.example", "alice@example.org"]
    assert back.find("{vcard-temp}EMAIL/{vcard-temp}HOME") is not None
    assert back.find("{vcard-temp}TEL/{vcard-temp}WORK") is not None
    assert back.find("{vcard-temp}PHOTO") is None


def test_vcard4_to_temp_with_photo_and_xmpp_only_impp():
    card = from_xml(f"<vcard xmlns='{v4.VCARD4}'><fn><text>Bob</text></fn>"
                    "<impp><uri>sip:bob@example</uri></impp><impp><uri>xmpp:bob@x.example</uri></impp>"
                    "<tel><uri>+1 555</uri></tel><gender><sex>M</sex></gender></vcard>")
    vt = v4.vcard4_to_temp(card, ("image/jpeg", "QUJD"))
    assert vt.findtext("{vcard-temp}FN") == "Bob"
    assert [e.text for e in vt.findall("{vcard-temp}JABBERID")] == ["bob@x.example"]
    assert vt.findtext("{vcard-temp}TEL/{vcard-temp}NUMBER") == "+1 555"    # no tel: prefix kept as is
    assert vt.findtext("{vcard-temp}PHOTO/{vcard-temp}TYPE") == "image/jpeg"
    assert vt.findtext("{vcard-temp}PHOTO/{vcard-temp}BINVAL") == "QUJD"


def test_merge_vcard4_into_temp_keeps_what_vcard4_has_no_place_for():
    vt = from_xml(TEMP)
    card = from_xml(f"<vcard xmlns='{v4.VCARD4}'><fn><text>Alice L.</text></fn>"
                    "<org><text>Looking Glass</text></org></vcard>")
    out = v4.merge_vcard4_into_temp(vt, card)
    assert out.findtext("{vcard-temp}FN") == "Alice L."
    assert out.find("{vcard-temp}NICKNAME") is None          # gone from the vCard4: gone
    assert out.findtext("{vcard-temp}ORG/{vcard-temp}ORGNAME") == "Looking Glass"
    assert out.findtext("{vcard-temp}ORG/{vcard-temp}ORGUNIT") == "Tea party"
    assert out.findtext("{vcard-temp}PHOTO/{vcard-temp}BINVAL") == "AAAA"
    assert out.findtext("{vcard-temp}GEO/{vcard-temp}LAT") == "51.75"
    assert v4.merge_vcard4_into_temp(None, card).findtext("{vcard-temp}FN") == "Alice L."


def test_merge_temp_into_vcard4_keeps_vcard4_only_fields():
    card = from_xml(f"<vcard xmlns='{v4.VCARD4}'><fn><text>Old</text></fn>"
                    "<gender><sex><text>F</text></sex></gender><lang><language-tag>en</language-tag></lang></vcard>")
    out = v4.merge_temp_into_vcard4(card, from_xml("<vCard xmlns='vcard-temp'><FN>New</FN></vCard>"))
    assert out.findtext(f"{V}fn/{V}text") == "New"
    assert out.find(V + "gender") is not None and out.find(V + "lang") is not None
    assert len(out.findall(V + "fn")) == 1


def test_empty_fields_are_left_out():
    vt = from_xml("<vCard xmlns='vcard-temp'><FN/><N><FAMILY> </FAMILY></N><EMAIL><USERID/></EMAIL>"
                  "<TEL><NUMBER></NUMBER></TEL><ADR><HOME/></ADR><JABBERID/></vCard>")
    assert len(v4.temp_to_vcard4(vt)) == 0
    assert len(v4.vcard4_to_temp(v4.temp_to_vcard4(vt))) == 0


def test_nickname():
    vt = from_xml("<vCard xmlns='vcard-temp'><FN>A</FN><NICKNAME>x</NICKNAME><NICKNAME>y</NICKNAME></vCard>")
    assert v4.nickname(vt) == "x"
    out = v4.with_nickname(vt, "Ally")
    assert [e.text for e in out.findall("{vcard-temp}NICKNAME")] == ["Ally"]
    assert v4.nickname(vt) == "x"                             # a copy
    assert to_xml(v4.with_nickname(None, "N")) == to_xml(
        from_xml("<vCard xmlns='vcard-temp'><NICKNAME>N</NICKNAME></vCard>"))
    assert v4.nickname(v4.temp_to_vcard4(out)) == "Ally"
    assert v4.nickname(ET.Element(V + "vcard")) is None

"""The menu file is checked at start-up and by `kefu check-data`, never failing silently."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from bot.app import create_app
from bot.app_keys import MENU
from bot.channels.menu import MenuError
from bot.nlu.data_check import menu_findings, project_findings
from tests.conftest import ROOT

BAD = """\
buttons:
  CONTACT_AGENT:
    label: 联系客服
    intent: request_human
  TYPO_INTENT:
    label: 查订单
    intent: order_stauts
  NO_ENTRY:
    label: 运费
    knowledge: no_such_entry
  EXTRA_FIELD:
    label: 客服时间
    intent: business_hours
    knowlege: free_shipping
  NO_LABEL:
    intent: greet
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "menu.yml"
    path.write_text(text, encoding="utf-8")
    return path


def intents() -> set[str]:
    import yaml

    domain = yaml.safe_load((ROOT / "nlu_data/domain.yml").read_text(encoding="utf-8"))
    return set(domain["intents"])


def test_check_data_names_every_wrong_button_and_passes_the_project_menu(tmp_path):
    knowledge = ROOT / "nlu_data/knowledge.yml"
    found = [f.message for f in menu_findings(write(tmp_path, BAD), knowledge, intents())]
    assert len(found) == 4, found
    assert any("'TYPO_INTENT'" in m and "order_stauts" in m for m in found)
    assert any("'NO_ENTRY'" in m and "no_such_entry" in m for m in found)
    assert any("'EXTRA_FIELD'" in m and "knowlege" in m for m in found)
    assert any("'NO_LABEL'" in m and "label" in m for m in found)
    assert menu_findings(ROOT / "nlu_data/menu.yml", knowledge, intents()) == []


def test_check_data_of_a_project_includes_its_menu(tmp_path):
    shutil.copytree(ROOT / "nlu_data", tmp_path / "nlu_data")
    write(tmp_path / "nlu_data", BAD)
    menu = [f for f in project_findings(tmp_path) if f.check == "menu"]
    assert len(menu) == 4 and all("menu.yml" in f.message for f in menu)


async def test_a_menu_entry_that_does_not_exist_stops_the_start_saying_which(
    aiohttp_client, settings, engine, tmp_path
):
    menu = write(tmp_path, "buttons:\n  FEE:\n    label: 运费\n    knowledge: no_such_entry\n")
    with pytest.raises(MenuError, match="'FEE': no knowledge entry 'no_such_entry'"):
        await aiohttp_client(
            create_app(settings.with_(menu_file=menu), engine),
            server_kwargs={"port": settings.port},
        )


async def test_a_button_whose_intent_the_model_does_not_know_is_off_and_logged(
    aiohttp_client, settings, engine, tmp_path, caplog
):
    caplog.set_level(logging.ERROR, logger="bot.channels.menu")
    menu = write(
        tmp_path,
        "buttons:\n  OK:\n    label: 联系客服\n    intent: request_human\n"
        "  ODD:\n    label: 查订单\n    intent: order_stauts\n",
    )
    client = await aiohttp_client(
        create_app(settings.with_(menu_file=menu), engine), server_kwargs={"port": settings.port}
    )
    served = client.app[MENU]
    assert served.get("OK") is not None and served.get("ODD") is None
    (record,) = [r for r in caplog.records if "ODD" in r.getMessage()]
    assert "order_stauts" in record.getMessage() and engine.version in record.getMessage()

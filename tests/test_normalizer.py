"""The normaliser: one spelling for what customers write many ways."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.normalizer import ChineseNormalizer, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＳＦ１２３４５６７８９０１２３", "SF1234567890123"),  # full-width letters and digits
        ("Ｈｅｌｌｏ　在吗", "Hello 在吗"),  # full-width space
        ("訂單怎麼還沒發貨", "订单怎么还没发货"),  # traditional to simplified (OpenCC)
        ("這個產品質量", "这个产品质量"),
        ("在吗？？？", "在吗?"),  # runs of punctuation
        ("太好了！！！！", "太好了!"),
        ("发货了吗。。。", "发货了吗。"),
        ("好评👍", "好评 :thumbs_up:"),  # emoji keep their meaning as a name
        ("生气😡😡😡", "生气 :enraged_face:"),
        ("你好，我想问一下。", "你好,我想问一下。"),  # full-width comma to ASCII, 。 kept
        ("  多余   空格 ", "多余 空格"),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_component_rewrites_text_before_tokenisation():
    messages = [Message(data={"text": "訂單ＳＦ１２３４５６７８９０１２３到哪了！！"})]
    ChineseNormalizer().process(messages)
    assert messages[0].get("text") == "订单SF1234567890123到哪了!"


def test_training_entities_move_with_the_text():
    text = "訂單！！！ＳＦ１２３４５６７８９０１２３到哪了"
    start = text.index("Ｓ")
    entity = {"entity": "order_id", "start": start, "end": start + 15, "value": "SF1234567890123"}
    message = Message(data={"text": text, "intent": "order_status", "entities": [entity]})
    ChineseNormalizer().process_training_data(TrainingData([message]))
    new_text = message.get("text")
    (moved,) = message.get("entities")
    assert new_text == "订单!SF1234567890123到哪了"
    assert new_text[moved["start"] : moved["end"]] == "SF1234567890123"

"""Language identification: the script shortcuts answer what lingua would, or better, and leave
Persian/Urdu and Latin-script text to lingua."""

from __future__ import annotations

import pytest

from nlp import langid


@pytest.mark.parametrize(("text", "lang"), [
    ("الخدمة في المدينة اليوم سيئة جدا والناس غاضبون", "ar"),
    # real ArSarcasm tweets that lingua alone called Persian / Urdu / English
    ("\"جستن بيبر https://t.co/gsIatUWJ02\"", "ar"),
    ("ﻟﻴﺲ ﺑﻮﺳﻊ ﺃحد ﺃﻥ ﻳﻤﻸ ﻣﻜﺎﻥ ﺃحد ﻓﺎﻷﻣﺎﻛﻦ ﻓﻲ ﺍﻟﻘﻠﻮﺏ ﻛﺒﺼﻤﺎﺕ ﺍﻷﺻﺎﺑﻊ", "ar"),  # presentation forms
    ("RT @aflam_0: اجزاء فيلم  The Expendables 🔥 https://t.co/x تابعو الروابط", "ar"),
    # Persian and Urdu letters send the text to lingua, which knows these languages
    ("این یک متن فارسی است و من آن را دوست دارم", "fa"),
    ("یہ ایک اردو جملہ ہے اور مجھے یہ پسند ہے", "ur"),
    ("this is clearly an english sentence with one word عربي", "en"),
    ("这家酒店房间很差", "zh"),
])
def test_detect(text: str, lang: str) -> None:
    assert langid.detect(text) == lang


"""The tables the built-in tag families are generated from: markets, languages, bands, names.

Kept apart from the generators in :mod:`siyu.segments.catalogue` so that adding a market or a
translation is a one-line data change.
"""

from __future__ import annotations

COUNTRIES: tuple[tuple[str, str, str], ...] = (
    ("US", "United States", "美国"),
    ("GB", "United Kingdom", "英国"),
    ("DE", "Germany", "德国"),
    ("FR", "France", "法国"),
    ("ES", "Spain", "西班牙"),
    ("IT", "Italy", "意大利"),
    ("NL", "Netherlands", "荷兰"),
    ("ID", "Indonesia", "印度尼西亚"),
    ("TH", "Thailand", "泰国"),
    ("PH", "Philippines", "菲律宾"),
    ("MY", "Malaysia", "马来西亚"),
    ("VN", "Vietnam", "越南"),
    ("SG", "Singapore", "新加坡"),
    ("BR", "Brazil", "巴西"),
    ("MX", "Mexico", "墨西哥"),
    ("SA", "Saudi Arabia", "沙特阿拉伯"),
    ("AE", "United Arab Emirates", "阿联酋"),
    ("JP", "Japan", "日本"),
    ("KR", "South Korea", "韩国"),
    ("AU", "Australia", "澳大利亚"),
    ("CA", "Canada", "加拿大"),
)
REGIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("sea", "Southeast Asia", "东南亚", ("ID", "TH", "PH", "MY", "VN", "SG")),
    ("eu", "European Union", "欧盟", ("DE", "FR", "ES", "IT", "NL")),
    ("uk", "United Kingdom", "英国市场", ("GB",)),
    ("latam", "Latin America", "拉丁美洲", ("BR", "MX")),
    ("mena", "Middle East", "中东", ("SA", "AE")),
    ("north_america", "North America", "北美", ("US", "CA")),
)
LANGUAGES: tuple[tuple[str, str, str], ...] = (
    ("en", "English", "英语"),
    ("id", "Indonesian", "印尼语"),
    ("th", "Thai", "泰语"),
    ("es", "Spanish", "西班牙语"),
    ("pt", "Portuguese", "葡萄牙语"),
    ("ar", "Arabic", "阿拉伯语"),
    ("fr", "French", "法语"),
    ("de", "German", "德语"),
    ("ms", "Malay", "马来语"),
    ("zh", "Chinese", "中文"),
)
LANGUAGE_VARIANTS: dict[str, tuple[str, ...]] = {
    "en": ("en-US", "en-GB", "en-PH", "en-MY", "en-SG", "en-AU", "en-CA"),
    "id": ("id-ID",),
    "th": ("th-TH",),
    "es": ("es-ES", "es-MX"),
    "pt": ("pt-BR", "pt-PT"),
    "ar": ("ar-SA", "ar-AE"),
    "fr": ("fr-FR", "fr-CA"),
    "de": ("de-DE", "de-AT", "de-CH"),
    "ms": ("ms-MY",),
    "zh": ("zh-CN", "zh-TW", "zh-HK", "zh-Hans", "zh-Hant"),
}
AGE_BANDS: tuple[tuple[int, int], ...] = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 120))
CATEGORY_ZH = {
    "baby": "母婴",
    "beauty": "美妆",
    "3C": "数码3C",
    "home": "家居",
    "apparel": "服饰",
    "outdoor": "户外",
}
WINDOW_ZH = {
    1: "1天",
    7: "7天",
    14: "14天",
    30: "30天",
    60: "60天",
    90: "90天",
    180: "180天",
    365: "一年",
}
TIER_ZH = {
    "churned": "流失",
    "new": "新客",
    "loyal": "忠诚",
    "active": "活跃",
    "potential": "潜力",
    "unclassified": "未分层",
}
SEGMENT_ZH = {
    "Champions": "冠军客户",
    "Loyal": "忠诚客户",
    "Potential Loyalist": "潜在忠诚",
    "New": "新客户",
    "Promising": "有潜力",
    "Need Attention": "需关注",
    "About to Sleep": "即将沉睡",
    "At Risk": "有风险",
    "Can't Lose": "不可流失",
    "Hibernating": "休眠",
    "Lost": "已流失",
}
ENGAGEMENT: tuple[tuple[str, str, str, str], ...] = (
    ("email_opener", "Email Opened", "Opened an email", "打开过邮件"),
    ("email_clicker", "Email Clicked", "Clicked an email", "点击过邮件"),
    ("whatsapp_inbound", "Message Received", "Wrote to the brand", "主动发消息"),
    ("community_poster", "Community Message Posted", "Posted in a community", "社群发言"),
    ("community_joiner", "Community Joined", "Joined a community", "加入社群"),
    ("browser", "Product Viewed", "Viewed products", "浏览商品"),
    ("cart_adder", "Product Added", "Added to cart", "加购"),
    ("checkout_starter", "Checkout Started", "Started checkout", "发起结算"),
    ("referrer", "Referral Link Shared", "Shared an invite link", "分享邀请链接"),
)

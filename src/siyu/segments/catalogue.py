"""The built-in tag catalogue: 200+ tags in families, each with names in English and Chinese.

Every tag is a rule in the tag language (docs/tags.md) over the attributes of
:mod:`siyu.segments.attributes` and windowed event counts. Families are generated from small
tables (markets, categories, windows) so that a brand can read, copy and adapt them; predictions,
loyalty and referral families are filled in as those slices land.
"""

from __future__ import annotations

from dataclasses import dataclass

from siyu.segments.attributes import CONSENT_CHANNELS, DEFAULT_CATEGORIES, category_key
from siyu.segments.catalogue_tables import (
    AGE_BANDS,
    CATEGORY_ZH,
    COUNTRIES,
    ENGAGEMENT,
    LANGUAGE_VARIANTS,
    LANGUAGES,
    REGIONS,
    SEGMENT_ZH,
    TIER_ZH,
    WINDOW_ZH,
)
from siyu.segments.rfm import SEGMENTS
from siyu.segments.tiers import tier_names


@dataclass(frozen=True)
class TagDef:
    tag_id: str
    family: str
    name_en: str
    name_zh: str
    description: str
    rule: str


def _slug(text: str) -> str:
    return category_key(text.replace("'", ""))


def _demographics() -> list[TagDef]:
    tags = [
        TagDef(
            f"country_{code.lower()}",
            "demographics",
            f"Lives in {en}",
            f"{zh}用户",
            f"Customer country is {code}.",
            f'country == "{code}"',
        )
        for code, en, zh in COUNTRIES
    ]
    for key, en, zh, codes in REGIONS:
        listed = ", ".join(f'"{c}"' for c in codes)
        tags.append(
            TagDef(
                f"region_{key}",
                "demographics",
                f"In {en}",
                f"{zh}用户",
                f"Country in {', '.join(codes)}.",
                f"country in ({listed})",
            )
        )
    for low, high in AGE_BANDS:
        label = f"{low}+" if high >= 120 else f"{low}-{high}"
        tags.append(
            TagDef(
                f"age_{low}_{min(high, 99)}",
                "demographics",
                f"Aged {label}",
                f"{label}岁",
                f"Age from the birthday is {label}.",
                f"age between {low} and {high}",
            )
        )
    for code, en, zh in LANGUAGES:
        forms = ", ".join(f'"{v}"' for v in (code, *LANGUAGE_VARIANTS[code]))
        tags.append(
            TagDef(
                f"language_{code}",
                "demographics",
                f"Speaks {en}",
                f"{zh}用户",
                f"Preferred language is {en}.",
                f"language in ({forms})",
            )
        )
    tags.append(
        TagDef(
            "has_birthday",
            "demographics",
            "Birthday known",
            "有生日信息",
            "The profile has a birthday.",
            "birthday is not null",
        )
    )
    tags.append(
        TagDef(
            "has_email",
            "demographics",
            "Email known",
            "有邮箱",
            "The profile has an email address.",
            "email is not null",
        )
    )
    tags.append(
        TagDef(
            "has_phone",
            "demographics",
            "Phone known",
            "有手机号",
            "The profile has a phone number.",
            "phone is not null",
        )
    )
    return tags


def _lifecycle() -> list[TagDef]:
    tags = [
        TagDef(
            f"tier_{tier}",
            "lifecycle",
            f"Tier: {tier}",
            f"分层：{TIER_ZH.get(tier, tier)}",
            f"Current lifecycle tier is {tier} (see docs/segments.md).",
            f'tier == "{tier}"',
        )
        for tier in tier_names("default")
    ]
    tags += [
        TagDef(
            f"rfm_{_slug(seg)}",
            "rfm",
            f"RFM: {seg}",
            f"RFM：{SEGMENT_ZH[seg]}",
            f"RFM segment is {seg}.",
            f'rfm_segment == "{seg}"',
        )
        for seg in SEGMENTS
    ]
    for score, en, zh in (
        ("r", "recency", "最近购买"),
        ("f", "frequency", "购买频次"),
        ("m", "monetary", "消费金额"),
    ):
        tags.append(
            TagDef(
                f"{score}_score_top",
                "rfm",
                f"Top {en} score",
                f"{zh}最高分",
                f"{en.title()} score 5.",
                f"{score}_score == 5",
            )
        )
        tags.append(
            TagDef(
                f"{score}_score_bottom",
                "rfm",
                f"Lowest {en} score",
                f"{zh}最低分",
                f"{en.title()} score 1.",
                f"{score}_score == 1",
            )
        )
    tags.append(
        TagDef(
            "high_value",
            "lifecycle",
            "High value",
            "高价值",
            "Spent over the high-value threshold in 365 days.",
            "high_value",
        )
    )
    return tags


def _purchases() -> list[TagDef]:
    tags: list[TagDef] = []
    for days in (7, 30, 60, 90, 180, 365):
        tags.append(
            TagDef(
                f"bought_last_{days}d",
                "purchases",
                f"Bought in the last {days} days",
                f"近{WINDOW_ZH[days]}有购买",
                f"An order in the last {days} days.",
                f"days_since_last_order < {days}",
            )
        )
    for days in (90, 180, 365):
        tags.append(
            TagDef(
                f"no_purchase_{days}d",
                "purchases",
                f"No purchase for {days} days",
                f"{WINDOW_ZH[days]}未购买",
                f"Bought before, not in {days} days.",
                f"orders_total > 0 and days_since_last_order >= {days}",
            )
        )
    tags += [
        TagDef(
            "never_bought",
            "purchases",
            "Never bought",
            "未购买",
            "No order yet.",
            "orders_total == 0",
        ),
        TagDef(
            "one_time_buyer",
            "purchases",
            "One-time buyer",
            "仅购买一次",
            "Exactly one order.",
            "orders_total == 1",
        ),
        TagDef(
            "repeat_buyer",
            "purchases",
            "Repeat buyer",
            "复购用户",
            "Two or more orders.",
            "orders_total >= 2",
        ),
        TagDef(
            "frequent_buyer",
            "purchases",
            "Frequent buyer",
            "高频购买",
            "Five or more orders in 365 days.",
            "orders_365 >= 5",
        ),
        TagDef(
            "super_buyer",
            "purchases",
            "Super buyer",
            "超级买家",
            "Ten or more orders in 365 days.",
            "orders_365 >= 10",
        ),
        TagDef(
            "first_order_30d",
            "purchases",
            "First order in 30 days",
            "30天内首购",
            "Every order of this customer was placed in the last 30 days.",
            'orders_total >= 1 and count(event == "Order Completed") == '
            'count(event == "Order Completed", last 30d)',
        ),
    ]
    bands = ((0, 25), (25, 50), (50, 100), (100, 200), (200, 1_000_000))
    for low, high in bands:
        label = f"{low}+" if high >= 1_000_000 else f"{low}-{high}"
        tags.append(
            TagDef(
                f"aov_{low}_{min(high, 9999)}",
                "price",
                f"AOV {label}",
                f"客单价{label}",
                f"Average order value in 365 days is {label}.",
                f"aov_365 >= {low} and aov_365 < {high}",
            )
        )
    spend_bands: tuple[tuple[float, float], ...] = (
        (0.01, 100),
        (100, 250),
        (250, 500),
        (500, 1000),
        (1000, 10_000_000),
    )
    for floor, ceiling in spend_bands:
        label = f"{floor:g}+" if ceiling >= 10_000_000 else f"{floor:g}-{ceiling:g}"
        tags.append(
            TagDef(
                f"spend_{int(floor)}_{min(int(ceiling), 99999)}",
                "price",
                f"Spent {label} in a year",
                f"年消费{label}",
                f"Net spend in 365 days is {label} (base currency).",
                f"spend_365 >= {floor} and spend_365 < {ceiling}",
            )
        )
    for category in DEFAULT_CATEGORIES:
        key, zh = category_key(category), CATEGORY_ZH.get(category, category)
        tags += [
            TagDef(
                f"buyer_{key}",
                "categories",
                f"Buys {category}",
                f"{zh}买家",
                f"Bought {category} in 365 days.",
                f"bought_{key}_365 >= 1",
            ),
            TagDef(
                f"loyal_{key}",
                "categories",
                f"Loyal {category} buyer",
                f"{zh}忠实买家",
                f"Bought {category} three times or more in 365 days.",
                f"bought_{key}_365 >= 3",
            ),
            TagDef(
                f"browses_{key}",
                "categories",
                f"Browses {category}",
                f"浏览{zh}",
                f"Viewed {category} products 3+ times in 30 days.",
                f'count(event == "Product Viewed" and properties.category == "{category}", '
                "last 30d) >= 3",
            ),
            TagDef(
                f"intent_{key}",
                "categories",
                f"Wants {category}",
                f"{zh}高意向",
                f"Added {category} to the cart in 14 days.",
                f'count(event == "Product Added" and properties.category == "{category}", '
                "last 14d) >= 1",
            ),
            TagDef(
                f"browse_no_buy_{key}",
                "categories",
                f"Browses {category}, never bought",
                f"浏览{zh}未购买",
                f"Viewed {category} in 30 days, never bought it.",
                f'count(event == "Product Viewed" and properties.category == "{category}", '
                f"last 30d) >= 1 and bought_{key}_365 == 0",
            ),
            TagDef(
                f"lapsed_{key}",
                "categories",
                f"Lapsed {category} buyer",
                f"{zh}流失买家",
                f"Bought {category} before, nothing in 90 days.",
                f"bought_{key}_365 >= 1 and days_since_last_order >= 90",
            ),
        ]
    return tags


def _engagement() -> list[TagDef]:
    tags: list[TagDef] = []
    for key, event, en, zh in ENGAGEMENT:
        for days in (7, 14, 30, 90, 180):
            tags.append(
                TagDef(
                    f"{key}_{days}d",
                    "engagement",
                    f"{en} in {days} days",
                    f"近{WINDOW_ZH[days]}{zh}",
                    f"'{event}' in the last {days} days.",
                    f'count(event == "{event}", last {days}d) >= 1',
                )
            )
        tags.append(
            TagDef(
                f"{key}_heavy",
                "engagement",
                f"{en} often",
                f"频繁{zh}",
                f"'{event}' 5+ times in 30 days.",
                f'count(event == "{event}", last 30d) >= 5',
            )
        )
    for days in (1, 7, 14):
        tags.append(
            TagDef(
                f"visited_{days}d",
                "engagement",
                f"Active in the last {days} days",
                f"近{WINDOW_ZH[days]}活跃",
                f"Any interaction in {days} days.",
                f"days_since_last_interaction < {days}",
            )
        )
    for days in (7, 30, 90, 365):
        tags.append(
            TagDef(
                f"joined_{days}d",
                "lifecycle",
                f"First seen in {days} days",
                f"{WINDOW_ZH[days]}内新增",
                f"First interaction less than {days} days ago.",
                f"days_since_first_interaction < {days}",
            )
        )
    tags += [
        TagDef(
            "cart_abandoner",
            "engagement",
            "Abandoned cart",
            "加购未付款",
            "Added to cart in 7 days without an order in 7 days.",
            'count(event == "Product Added", last 7d) >= 1 and '
            'count(event == "Order Completed", last 7d) == 0',
        ),
        TagDef(
            "serial_cart_abandoner",
            "engagement",
            "Three carts, no payment",
            "多次加购未付款",
            "Three or more add-to-carts in 30 days and no order in 30 days.",
            'count(event == "Product Added", last 30d) >= 3 and '
            'count(event == "Order Completed", last 30d) == 0',
        ),
        TagDef(
            "checkout_abandoner",
            "engagement",
            "Abandoned checkout",
            "结算未完成",
            "Started checkout in 7 days without an order.",
            'count(event == "Checkout Started", last 7d) >= 1 and '
            'count(event == "Order Completed", last 7d) == 0',
        ),
        TagDef(
            "silent_community_7d",
            "engagement",
            "Quiet in the community",
            "社群沉默",
            "Joined a community but posted nothing in 7 days.",
            'count(event == "Community Joined") >= 1 and '
            'count(event == "Community Message Posted", last 7d) == 0',
        ),
        TagDef(
            "dormant_30d",
            "engagement",
            "No activity in 30 days",
            "30天无互动",
            "No interaction of any kind in 30 days.",
            "interactions_30 == 0",
        ),
        TagDef(
            "very_active_30d",
            "engagement",
            "Very active",
            "高度活跃",
            "20 or more interactions in 30 days.",
            "interactions_30 >= 20",
        ),
        TagDef(
            "coupon_user",
            "price_sensitivity",
            "Uses coupons",
            "使用优惠券",
            "At least one order with a coupon in 365 days.",
            "coupon_share_365 > 0",
        ),
        TagDef(
            "coupon_hunter",
            "price_sensitivity",
            "Coupon hunter",
            "优惠券依赖",
            "Half or more of the orders in 365 days used a coupon.",
            "coupon_share_365 >= 0.5",
        ),
        TagDef(
            "always_coupon",
            "price_sensitivity",
            "Only buys with coupons",
            "只用券购买",
            "Every order in 365 days used a coupon.",
            "coupon_share_365 == 1",
        ),
        TagDef(
            "full_price_buyer",
            "price_sensitivity",
            "Full-price buyer",
            "原价购买",
            "Orders in 365 days, none with a coupon.",
            "orders_365 >= 1 and coupon_share_365 == 0",
        ),
    ]
    return tags


def _reachability() -> list[TagDef]:
    names = {
        "email": ("email", "邮件"),
        "sms": ("SMS", "短信"),
        "whatsapp": ("WhatsApp", "WhatsApp"),
    }
    tags = [
        TagDef(
            f"reachable_{ch}",
            "reachability",
            f"Reachable by {names[ch][0]}",
            f"可{names[ch][1]}触达",
            f"Latest marketing consent for {ch} is granted.",
            f"consent_{ch}",
        )
        for ch in CONSENT_CHANNELS
    ]
    anywhere = " or ".join(f"consent_{ch}" for ch in CONSENT_CHANNELS)
    tags += [
        TagDef(
            "reachable_any",
            "reachability",
            "Reachable",
            "可触达",
            "Marketing consent on at least one channel.",
            anywhere,
        ),
        TagDef(
            "unreachable",
            "reachability",
            "Not reachable",
            "不可触达",
            "No marketing consent on any channel.",
            f"not ({anywhere})",
        ),
        TagDef(
            "reachable_whatsapp_not_email",
            "reachability",
            "WhatsApp only",
            "仅WhatsApp可达",
            "Consent for WhatsApp but not email.",
            "consent_whatsapp and not consent_email",
        ),
    ]
    return tags


def _predictions() -> list[TagDef]:
    """Tags over the predict slice's scores (siyu predict clv / churn); see docs/predict.md."""
    rows = [
        ("clv_top_10pct", "Top 10% predicted value", "预测价值前10%", "clv_decile == 10"),
        ("clv_top_30pct", "Top 30% predicted value", "预测价值前30%", "clv_decile >= 8"),
        ("clv_bottom_half", "Lower half predicted value", "预测价值后50%", "clv_decile <= 5"),
        ("likely_active", "Likely still active", "大概率活跃", "p_alive >= 0.8"),
        ("likely_lapsed", "Likely lapsed", "大概率已流失", "p_alive < 0.3"),
        (
            "churn_risk_very_high",
            "Churn risk very high",
            "流失风险极高",
            'churn_band == "very_high"',
        ),
        ("churn_risk_high", "Churn risk high", "流失风险高", 'churn_band == "high"'),
        ("churn_risk_medium", "Churn risk medium", "流失风险中", 'churn_band == "medium"'),
        ("churn_risk_low", "Churn risk low", "流失风险低", 'churn_band == "low"'),
        (
            "valuable_at_risk",
            "Valuable customer at risk",
            "高价值且有流失风险",
            "clv_decile >= 8 and churn_risk >= 60",
        ),
        (
            "next_order_due_14d",
            "Next order expected within 14 days",
            "预计14天内复购",
            "days_to_next_order between 0 and 14",
        ),
        (
            "next_order_overdue",
            "Expected order overdue",
            "预计复购已逾期",
            "days_to_next_order < 0",
        ),
    ]
    return [
        TagDef(tag_id, "predictions", en, zh, f"Prediction scores: {rule}.", rule)
        for tag_id, en, zh, rule in rows
    ]


def _loyalty_referral() -> list[TagDef]:
    """Tags over the loyalty and referral programmes (see programmes.py for the attributes)."""
    rows = [
        ("points_holder", "Has loyalty points", "持有积分", "points_balance > 0"),
        ("points_1000", "1,000+ points", "积分1000以上", "points_balance >= 1000"),
        ("points_5000", "5,000+ points", "积分5000以上", "points_balance >= 5000"),
        ("member_silver", "Silver member", "白银会员", 'member_tier == "Silver"'),
        ("member_gold", "Gold member", "黄金会员", 'member_tier == "Gold"'),
        ("member_black", "Black member", "黑卡会员", 'member_tier == "Black"'),
        ("paid_subscriber", "Paid member", "付费会员", "paid_member"),
        ("referred_customer", "Referred by a friend", "好友推荐来的客户", "referred"),
        ("successful_inviter", "Successful inviter", "成功邀请过好友", "successful_invites >= 1"),
        ("super_inviter", "Super inviter (5+)", "超级邀请者(5人以上)", "successful_invites >= 5"),
        ("group_buy_participant", "Group-buy participant", "参与过拼团", "group_buys_joined >= 1"),
        ("assist_helper", "Helped a friend (assist)", "帮好友助力过", "assists_given >= 1"),
    ]
    return [
        TagDef(tag_id, "loyalty", en, zh, f"Loyalty and referral: {rule}.", rule)
        for tag_id, en, zh, rule in rows
    ]


def builtin_tags() -> list[TagDef]:
    """Every built-in tag, in family order."""
    tags = (
        _demographics()
        + _lifecycle()
        + _purchases()
        + _engagement()
        + _reachability()
        + _loyalty_referral()
        + _predictions()
    )
    ids = [t.tag_id for t in tags]
    assert len(ids) == len(set(ids)), "tag ids must be unique"
    return tags

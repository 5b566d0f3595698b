"""The seed scenarios of rules/examples/, each shown firing and not firing, on a fake clock.

Minutes pass in microseconds: the clock is the test's, the store and engine are real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession
from support.servers import WITH_CLUSTER

BACKENDS = WITH_CLUSTER  # the store tests run on a Redis Cluster too

ROOT = Path(__file__).parent.parent
SHOP = "http://shop.test"
BOOTS = f"{SHOP}/product/boots"
BLOG = f"{SHOP}/blog/trail-shoes"
DAY = 86_400


EXAMPLES = ROOT / "rules" / "examples"
SCENARIO_FILES = {
    "cart_abandonment": "01-cart-abandonment.yaml",
    "engaged_browser": "02-engaged-browser.yaml",
    "hesitation_chat": "03-hesitation-chat.yaml",
    "assist_popup": "04-assist-popup.yaml",
    "welcome": "05-welcome-and-cart-reminder.yaml",
    "cart_reminder": "05-welcome-and-cart-reminder.yaml",
    "re_engagement": "06-re-engagement.yaml",
    "category_offer": "07-category-offer.yaml",
    "welcome_back": "08-welcome-back.yaml",
    "cart_idle_discount": "09-cart-idle-discount.yaml",
}


@pytest.fixture(scope="module")
def scenario_rules(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str | None], Runtime]:
    """Each scenario's rule file alone in a folder (``None``: every example), with the shipped
    templates, loaded once for the module: loading the templates takes a fifth of a second,
    and a harness only reads what is loaded."""
    loaded: dict[str | None, Runtime] = {}

    def rules_of(scenario: str | None) -> Runtime:
        if scenario not in loaded:
            rules = EXAMPLES
            if scenario is not None:
                rules = tmp_path_factory.mktemp("rules")
                name = SCENARIO_FILES[scenario]
                (rules / name).write_text((EXAMPLES / name).read_text())
            loaded[scenario] = Runtime(rules, ROOT / "templates")
        return loaded[scenario]

    return rules_of


@pytest.fixture
def shop(
    request: pytest.FixtureRequest,
    store: RedisStore,
    settings: Settings,
    scenario_rules: Callable[[str | None], Runtime],
) -> Harness:
    """The scenario's own rule file alone (by the test's ``scenario`` mark), or, unmarked,
    every example with the site policy."""
    mark = request.node.get_closest_marker("scenario")
    runtime = scenario_rules(None if mark is None else mark.args[0])
    rules = replace(settings, rules_dir=runtime.rules_dir, templates_dir=runtime.templates_dir)
    return Harness(store, rules, loaded=runtime)


async def product_view(v: VisitorSession, slug: str, category: str = "shoes") -> None:
    url = f"{SHOP}/product/{slug}"
    await v.send("page_view", url)
    await v.send(
        "custom",
        url,
        name="product_view",
        props={"product_id": slug, "category": category, "name": slug.title()},
    )


async def add_to_cart(v: VisitorSession, url: str = BOOTS) -> None:
    await v.send("custom", url, name="add_to_cart", props={"product_id": "boots"})


# 1. added to cart and no checkout within 30 min


@pytest.mark.scenario("cart_abandonment")
async def test_cart_abandonment_fires_30_minutes_after_add_to_cart(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BOOTS)
    await add_to_cart(v)
    await v.send("click", BOOTS, selector="#keep-browsing")  # activity keeps other rules away
    await shop.pass_time(29 * 60)
    assert "cart-abandonment" not in shop.rules_shown
    await shop.pass_time(60)
    assert "cart-abandonment" in shop.rules_shown


@pytest.mark.scenario("cart_abandonment")
async def test_cart_abandonment_is_cancelled_by_checkout(shop: Harness) -> None:
    v = await shop.visit()
    await add_to_cart(v)
    await v.send("custom", f"{SHOP}/checkout", name="checkout_started")
    await shop.pass_time(31 * 60)
    assert "cart-abandonment" not in shop.rules_shown


@pytest.mark.scenario("cart_abandonment")
async def test_cart_abandonment_skips_visitors_who_purchased_before(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("custom", f"{SHOP}/thanks", name="purchase", props={"total": 80})
    await add_to_cart(v)
    await shop.pass_time(31 * 60)
    assert "cart-abandonment" not in shop.rules_shown


@pytest.mark.scenario("cart_abandonment")
async def test_cart_abandonment_is_shown_to_a_visitor_only_once(shop: Harness) -> None:
    v = await shop.visit()
    await add_to_cart(v)
    await shop.pass_time(31 * 60)
    assert shop.rules_shown.count("cart-abandonment") == 1
    later = await shop.visit(session=None)
    await add_to_cart(later)
    await shop.pass_time(31 * 60)
    assert shop.rules_shown.count("cart-abandonment") == 1


# 2. > 5 min active on a product page and >= 3 distinct products viewed


@pytest.mark.scenario("engaged_browser")
async def test_engaged_browser_fires_after_5_active_minutes_with_3_products(shop: Harness) -> None:
    v = await shop.visit()
    for slug in ("boots", "tent", "boots", "parka"):
        await product_view(v, slug)
    await v.attend(f"{SHOP}/product/parka", 5 * 60)
    assert "engaged-browser" in shop.rules_shown


@pytest.mark.scenario("engaged_browser")
async def test_engaged_browser_counts_only_attentive_time_not_an_idle_open_tab(
    shop: Harness,
) -> None:
    v = await shop.visit()
    for slug in ("boots", "tent", "parka"):
        await product_view(v, slug)
    url = f"{SHOP}/product/parka"
    read = await v.attend(url, 2 * 60)
    await shop.pass_time(10 * 60)  # visible, but nobody there: no beat
    assert "engaged-browser" not in shop.rules_shown
    read = await v.attend(url, 2 * 60 + 50, read)
    assert "engaged-browser" not in shop.rules_shown  # 4 min 50 s attentive of 14 min 50 s
    await v.attend(url, 10, read)
    assert "engaged-browser" in shop.rules_shown


@pytest.mark.scenario("engaged_browser")
async def test_engaged_browser_needs_three_distinct_products(shop: Harness) -> None:
    v = await shop.visit()
    for slug in ("boots", "tent", "boots"):
        await product_view(v, slug)
    await shop.pass_time(6 * 60)
    assert "engaged-browser" not in shop.rules_shown


@pytest.mark.scenario("engaged_browser")
async def test_engaged_browser_counts_only_visible_time(shop: Harness) -> None:
    v = await shop.visit()
    for slug in ("boots", "tent", "parka"):
        await product_view(v, slug)
    url = f"{SHOP}/product/parka"
    read = await v.attend(url, 60)
    await v.send("visibility", url, state="hidden", dwell_ms=60_000, active_ms=read)
    await shop.pass_time(10 * 60)  # hidden: the clock of active dwell stands still
    assert "engaged-browser" not in shop.rules_shown
    await v.send("visibility", url, state="visible", dwell_ms=60_000, active_ms=read)
    read = await v.attend(url, 3 * 60, read)
    assert "engaged-browser" not in shop.rules_shown
    await v.attend(url, 60, read)
    assert "engaged-browser" in shop.rules_shown


# 3. 30 s on a product page without add-to-cart -> chat


@pytest.mark.scenario("hesitation_chat")
async def test_hesitation_chat_fires_after_30_seconds_on_a_product(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BOOTS)
    await shop.pass_time(30)
    assert shop.rules_shown[:1] == ["hesitation-chat"]
    assert shop.shown[0][1].kind == "chat"


@pytest.mark.scenario("hesitation_chat")
async def test_hesitation_chat_not_on_a_blog_page_nor_after_add_to_cart(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BLOG)
    await shop.pass_time(40)
    await v.send("page_view", BOOTS)
    await add_to_cart(v)
    await shop.pass_time(40)
    assert "hesitation-chat" not in shop.rules_shown


# 4. product viewed, no add-to-cart within 60 s -> assistance


@pytest.mark.scenario("assist_popup")
async def test_assist_popup_fires_60_seconds_after_a_product_view(shop: Harness) -> None:
    v = await shop.visit()
    await product_view(v, "boots")
    await v.send("custom", BOOTS, name="size_chart_opened")
    await shop.pass_time(59)
    assert shop.rules_shown == []
    await shop.pass_time(1)
    assert shop.rules_shown == ["assist-popup"]


@pytest.mark.scenario("assist_popup")
async def test_assist_popup_not_after_add_to_cart(shop: Harness) -> None:
    v = await shop.visit()
    await product_view(v, "boots")
    await add_to_cart(v)
    await shop.pass_time(90)
    assert shop.rules_shown == []


# 5. new visitor idle 10 s -> welcome; returning visitor with items in cart -> reminder


@pytest.mark.scenario("welcome")
async def test_a_new_visitor_idle_for_10_seconds_is_welcomed(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BLOG)
    await shop.pass_time(10)
    assert shop.rules_shown == ["welcome-new"]


@pytest.mark.scenario("welcome")
async def test_activity_postpones_the_welcome(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BLOG)
    for _ in range(3):
        await shop.pass_time(8)
        await v.send("scroll", BLOG, depth=50)
    assert shop.rules_shown == []
    await shop.pass_time(10)
    assert shop.rules_shown == ["welcome-new"]


@pytest.mark.scenario("welcome")
async def test_a_returning_visitor_is_not_welcomed_as_new(shop: Harness) -> None:
    first = await shop.visit()
    await first.send("page_view", BLOG)
    await shop.pass_time(20)
    assert shop.rules_shown == ["welcome-new"]
    second = await shop.visit(session=None)
    await second.send("page_view", BLOG)
    await shop.pass_time(20)
    assert shop.rules_shown == ["welcome-new"]


@pytest.mark.scenario("cart_reminder")
async def test_a_returning_visitor_with_an_open_cart_is_reminded(shop: Harness) -> None:
    first = await shop.visit()
    await add_to_cart(first)
    second = await shop.visit(session=None)
    await second.send("page_view", f"{SHOP}/")
    assert "cart-reminder" in shop.rules_shown


@pytest.mark.scenario("cart_reminder")
async def test_no_cart_reminder_after_the_purchase(shop: Harness) -> None:
    first = await shop.visit()
    await add_to_cart(first)
    await first.send("custom", f"{SHOP}/thanks", name="purchase")
    second = await shop.visit(session=None)
    await second.send("page_view", f"{SHOP}/")
    assert "cart-reminder" not in shop.rules_shown


# 6. inactive > 15 min -> re-engagement


@pytest.mark.scenario("re_engagement")
async def test_re_engagement_after_15_idle_minutes(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BLOG)
    await shop.pass_time(14 * 60)
    await v.send("scroll", BLOG, depth=25)
    await shop.pass_time(14 * 60)
    assert shop.rules_shown == []
    await shop.pass_time(60)
    assert shop.rules_shown == ["re-engagement"]


@pytest.mark.scenario("re_engagement")
async def test_no_re_engagement_while_the_visitor_is_active(shop: Harness) -> None:
    v = await shop.visit()
    for _ in range(20):
        await v.send("click", BLOG, selector="a.next")
        await shop.pass_time(60)
    assert "re-engagement" not in shop.rules_shown


# 7. 5 products of one category within 10 min -> offer


@pytest.mark.scenario("category_offer")
async def test_category_offer_after_5_products_of_one_category(shop: Harness) -> None:
    v = await shop.visit()
    for i in range(5):
        await product_view(v, f"shoe-{i}", "shoes")
        await product_view(v, f"jacket-{i}", "jackets") if i < 3 else None
        await shop.pass_time(60)
    assert shop.rules_shown == ["category-offer"]


@pytest.mark.scenario("category_offer")
async def test_category_offer_not_when_spread_over_categories_or_time(shop: Harness) -> None:
    v = await shop.visit()
    for i in range(4):
        await product_view(v, f"shoe-{i}", "shoes")
        await product_view(v, f"jacket-{i}", "jackets")
    await shop.pass_time(11 * 60)
    await product_view(v, "shoe-9", "shoes")
    assert shop.rules_shown == []


# 8. back after 30+ days -> welcome back


@pytest.mark.scenario("welcome_back")
async def test_welcome_back_after_30_days_away(shop: Harness) -> None:
    first = await shop.visit()
    await first.send("page_view", BLOG)
    await shop.pass_time(31 * DAY)
    second = await shop.visit(session=None)
    await second.send("page_view", f"{SHOP}/")
    assert "welcome-back" in shop.rules_shown


@pytest.mark.scenario("welcome_back")
async def test_no_welcome_back_after_a_week(shop: Harness) -> None:
    first = await shop.visit()
    await first.send("page_view", BLOG)
    await shop.pass_time(7 * DAY)
    second = await shop.visit(session=None)
    await second.send("page_view", f"{SHOP}/")
    assert "welcome-back" not in shop.rules_shown


# 9. cart addition then 10 min without activity -> 5% discount


@pytest.mark.scenario("cart_idle_discount")
async def test_cart_idle_discount_after_10_quiet_minutes(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", f"{SHOP}/cart")
    await add_to_cart(v, f"{SHOP}/cart")
    await shop.pass_time(10 * 60)
    assert "cart-idle-discount" in shop.rules_shown


@pytest.mark.scenario("cart_idle_discount")
async def test_no_cart_idle_discount_without_a_cart(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", f"{SHOP}/cart")
    await shop.pass_time(11 * 60)
    assert "cart-idle-discount" not in shop.rules_shown


# 10. at most 2 prompts per session; 24 h pause after repeated dismissals


async def test_at_most_two_prompts_per_session(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BLOG)
    for _ in range(3):
        await shop.pass_time(16 * 60)
        prompt = shop.shown[-1][1]
        await v.send("prompt_dismiss", BLOG, prompt=prompt.id, rule=prompt.rule)
        await v.send("page_view", BOOTS)
        await shop.pass_time(31)
    assert len(shop.shown) == 2
    assert any(r["code"] == "cap_site" for r in await shop.audit())


async def test_two_dismissals_pause_prompts_for_24_hours(shop: Harness) -> None:
    v = await shop.visit()
    await v.send("page_view", BOOTS)
    await shop.pass_time(10)
    assert shop.rules_shown == ["welcome-new"]
    await v.send("prompt_dismiss", BOOTS, prompt=shop.shown[-1][1].id, rule="welcome-new")
    await v.send("page_view", BOOTS)
    await shop.pass_time(30)
    assert shop.rules_shown == ["welcome-new", "hesitation-chat"]
    await v.send("prompt_dismiss", BOOTS, prompt=shop.shown[-1][1].id, rule="hesitation-chat")
    fresh = await shop.visit(session=None)
    await fresh.send("page_view", BOOTS)
    await shop.pass_time(60)
    assert len(shop.shown) == 2
    assert any(r["code"] == "dismiss_pause" for r in await shop.audit())
    await shop.pass_time(DAY)
    later = await shop.visit(session=None)
    await later.send("page_view", BOOTS)
    await shop.pass_time(30)
    assert shop.rules_shown[2:] == ["hesitation-chat"]

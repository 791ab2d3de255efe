"""Staff mode on a tablet: login, cash, no-sale, discounts, park, refund, reprint, status."""

STAFF_SCREENS: dict[str, str] = {}
STAFF_PRESENTERS: dict[str, str] = {}

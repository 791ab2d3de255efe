"""The self-checkout a customer sees: welcome, scan and search, age check, pay, receipt."""

CUSTOMER_SCREENS: dict[str, str] = {
    "welcome": "appliance.screens.customer.welcome:WelcomeScreen",
    "shop": "appliance.screens.customer.shop:ShopScreen",
}
CUSTOMER_PRESENTERS: dict[str, str] = {}

"""The self-checkout a customer sees: welcome, scan and search, age check, pay, receipt.

A screen's view `<screen>.py`, its rules `<screen>.kv` and its presenter, if it has one,
`<screen>_presenter.py` lie side by side; `appliance.screens.presenter_set` builds the presenters.
"""

CUSTOMER_SCREENS: dict[str, str] = {
    "welcome": "appliance.screens.customer.welcome:WelcomeScreen",
    "shop": "appliance.screens.customer.shop:ShopScreen",
    "browse": "appliance.screens.customer.browse:BrowseScreen",
    "age_check": "appliance.screens.customer.age_check:AgeCheckScreen",
    "bagging": "appliance.screens.customer.bagging:BaggingScreen",
    "payment": "appliance.screens.customer.payment:PaymentScreen",
    "receipt": "appliance.screens.customer.receipt:ReceiptScreen",
    "thanks": "appliance.screens.customer.thanks:ThanksScreen",
    "locked": "appliance.screens.customer.locked:LockedScreen",
    "out_of_order": "appliance.screens.customer.out_of_order:OutOfOrderScreen",
}

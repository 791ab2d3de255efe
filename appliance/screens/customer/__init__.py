"""The self-checkout a customer sees: welcome, scan and search, age check, pay, receipt."""

CUSTOMER_SCREENS: dict[str, str] = {
    "welcome": "appliance.screens.customer.welcome:WelcomeScreen",
    "shop": "appliance.screens.customer.shop:ShopScreen",
    "browse": "appliance.screens.customer.browse:BrowseScreen",
    "age_check": "appliance.screens.customer.age_check:AgeCheckScreen",
    "payment": "appliance.screens.customer.payment:PaymentScreen",
    "receipt": "appliance.screens.customer.receipt:ReceiptScreen",
    "thanks": "appliance.screens.customer.thanks:ThanksScreen",
    "locked": "appliance.screens.customer.locked:LockedScreen",
}
# Built in this order: a presenter may use those above it (age_check and payment use staff_check).
CUSTOMER_PRESENTERS: dict[str, str] = {
    "staff_check": "appliance.screens.customer.staff_check:StaffCheck",
    "browse": "appliance.screens.customer.browse_presenter:BrowsePresenter",
    "age_check": "appliance.screens.customer.age_check_presenter:AgeCheckPresenter",
    "payment": "appliance.screens.customer.payment_presenter:PaymentPresenter",
    "receipt": "appliance.screens.customer.receipt_presenter:ReceiptPresenter",
    "idle": "appliance.screens.customer.idle:IdlePresenter",
    "lock_notice": "appliance.screens.customer.lock_notice:LockNotice",
}

"""Staff mode on a tablet: login, cash, no-sale, discounts, park, refund, reprint, status."""

STAFF_SCREENS: dict[str, str] = {
    "staff_login": "appliance.screens.staff.login:StaffLoginScreen",
    "till": "appliance.screens.staff.till:TillScreen",
    "cash": "appliance.screens.staff.cash:CashScreen",
    "refund": "appliance.screens.staff.refund:RefundScreen",
    "parked": "appliance.screens.staff.parked:ParkedScreen",
    "status": "appliance.screens.staff.status:StatusScreen",
}
# Built in this order: the later ones use `staff_access` (PIN checks and the lockout).
STAFF_PRESENTERS: dict[str, str] = {
    "staff_access": "appliance.screens.staff.presenters.access:StaffAccess",
    "staff_login": "appliance.screens.staff.presenters.login:StaffLoginPresenter",
    "till": "appliance.screens.staff.presenters.till:TillPresenter",
    "cash": "appliance.screens.staff.presenters.cash:CashPresenter",
    "refund": "appliance.screens.staff.presenters.refund:RefundPresenter",
    "parked": "appliance.screens.staff.presenters.parked:ParkedPresenter",
    "staff_status": "appliance.screens.staff.presenters.status:StaffStatusPresenter",
}

"""Staff mode on a tablet: login, cash, no-sale, discounts, park, refund, reprint, status.

A screen's view `<screen>.py`, its rules `<screen>.kv` and its presenter, if it has one,
`<screen>_presenter.py` lie side by side. `access.py` and `lockout.py` serve the login and
the approval dialog alike. `appliance.screens.presenter_set` builds the presenters.
"""

STAFF_SCREENS: dict[str, str] = {
    "staff_login": "appliance.screens.staff.login:StaffLoginScreen",
    "till": "appliance.screens.staff.till:TillScreen",
    "cash": "appliance.screens.staff.cash:CashScreen",
    "refund": "appliance.screens.staff.refund:RefundScreen",
    "parked": "appliance.screens.staff.parked:ParkedScreen",
    "status": "appliance.screens.staff.status:StatusScreen",
}

"""Staff mode on a tablet: login, cash, no-sale, discounts, park, refund, reprint, status,
and the shift: open with a float, cash in and out, X and Z reports, void, close; and the
store's calls for help, some answered from here (remote approval).

A screen's view `<screen>.py`, its rules `<screen>.kv` and its presenter, if it has one,
`<screen>_presenter.py` lie side by side. `access.py` and `lockout.py` serve the login and
the approval dialog alike; `count_rows.py` the shift's open and close counts.
`appliance.screens.presenter_set` builds the presenters.
"""

STAFF_SCREENS: dict[str, str] = {
    "staff_login": "appliance.screens.staff.login:StaffLoginScreen",
    "till": "appliance.screens.staff.till:TillScreen",
    "cash": "appliance.screens.staff.cash:CashScreen",
    "refund": "appliance.screens.staff.refund:RefundScreen",
    "parked": "appliance.screens.staff.parked:ParkedScreen",
    "status": "appliance.screens.staff.status:StatusScreen",
    "shift_open": "appliance.screens.staff.shift_open:ShiftOpenScreen",
    "shift_close": "appliance.screens.staff.shift_close:ShiftCloseScreen",
    "cash_moves": "appliance.screens.staff.cash_moves:CashMovesScreen",
    "report": "appliance.screens.staff.report:ReportScreen",
    "void": "appliance.screens.staff.void:VoidScreen",
    "reprint": "appliance.screens.staff.reprint:ReprintScreen",
    "help_calls": "appliance.screens.staff.help_calls:HelpCallsScreen",
}

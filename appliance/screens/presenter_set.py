"""Every presenter the app holds, as typed fields, built once in dependency order."""

from __future__ import annotations

from dataclasses import dataclass, fields

from kivy.app import App

from appliance.screens.customer.age_check_presenter import AgeCheckPresenter
from appliance.screens.customer.bagging_presenter import BaggingPresenter
from appliance.screens.customer.browse_presenter import BrowsePresenter
from appliance.screens.customer.help_button import HelpPresenter
from appliance.screens.customer.locked_presenter import LockNotice
from appliance.screens.customer.out_of_order_presenter import OutOfOrderNotice
from appliance.screens.customer.payment_presenter import PaymentPresenter
from appliance.screens.customer.receipt_presenter import ReceiptPresenter
from appliance.screens.customer.staff_pin_presenter import StaffCheck
from appliance.screens.customer.still_there_presenter import IdlePresenter
from appliance.screens.pictures import PictureLoader
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.drawer_watch import DrawerWatch
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.shift_state import ShiftState
from appliance.screens.scan_sounds import ScanSounds
from appliance.screens.staff.access import StaffAccess
from appliance.screens.staff.cash_moves_presenter import CashMovesPresenter
from appliance.screens.staff.cash_presenter import CashPresenter
from appliance.screens.staff.help_calls_presenter import HelpCallsPresenter
from appliance.screens.staff.login_presenter import StaffLoginPresenter
from appliance.screens.staff.parked_presenter import ParkedPresenter
from appliance.screens.staff.refund_presenter import RefundPresenter
from appliance.screens.staff.report_presenter import ReportPresenter
from appliance.screens.staff.reprint_presenter import ReprintPresenter
from appliance.screens.staff.shift_close_presenter import ShiftClosePresenter
from appliance.screens.staff.shift_open_presenter import ShiftOpenPresenter
from appliance.screens.staff.status_presenter import StaffStatusPresenter
from appliance.screens.staff.till_presenter import TillPresenter
from appliance.screens.staff.void_presenter import VoidPresenter


@dataclass(frozen=True, slots=True)
class Presenters:
    """The presenters by name; `.kv` rules reach each one as `app.<field name>`."""

    cart: CartPresenter
    router: InputRouter
    # The customer's screens.
    staff_check: StaffCheck
    browse: BrowsePresenter
    age_check: AgeCheckPresenter
    bagging: BaggingPresenter  # the bagging-area check: the reminder and the pause
    help: HelpPresenter  # the help button and the calls for help
    payment: PaymentPresenter
    receipt: ReceiptPresenter
    idle: IdlePresenter
    lock_notice: LockNotice
    out_of_order: OutOfOrderNotice
    # Staff mode.
    staff_access: StaffAccess
    staff_login: StaffLoginPresenter
    till: TillPresenter
    cash: CashPresenter
    refund: RefundPresenter
    parked: ParkedPresenter
    staff_status: StaffStatusPresenter
    help_calls: HelpCallsPresenter  # the store's calls for help, answered from here
    # The shift on a staffed till.
    shift: ShiftState
    drawer_watch: DrawerWatch
    shift_open: ShiftOpenPresenter
    shift_close: ShiftClosePresenter
    cash_moves: CashMovesPresenter
    report: ReportPresenter
    void: VoidPresenter
    reprint: ReprintPresenter
    # Not views' presenters: the sound each scan makes, the pictures rows show.
    scan_sounds: ScanSounds
    pictures: PictureLoader

    def by_name(self) -> dict[str, object]:
        """Each presenter under its field name, for the app to expose to `.kv` rules."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def build_presenters(ctx: ScreenContext) -> Presenters:
    """Build every presenter, each after those it is given.

    The order is also the order in which they subscribe to the bus: keep it, and every
    event reaches them in the order the screens were written against.
    """
    sounds = ScanSounds.for_screens(ctx)
    sounds.listen_before(ctx.bus)  # sees each scan before any screen handles it...
    cart = CartPresenter(ctx)
    router = InputRouter(ctx, cart.scan)
    staff_check = StaffCheck(ctx)
    browse = BrowsePresenter(ctx, cart)
    age_check = AgeCheckPresenter(ctx, cart, router, staff_check)
    bagging = BaggingPresenter(ctx, router, staff_check)
    payment = PaymentPresenter(ctx, router, staff_check)
    receipt = ReceiptPresenter(ctx)
    idle = IdlePresenter(ctx)
    lock_notice = LockNotice(ctx, router)
    out_of_order = OutOfOrderNotice(ctx, router)
    staff_access = StaffAccess(ctx)
    staff_login = StaffLoginPresenter(ctx, staff_access, router)
    till = TillPresenter(ctx, cart)
    cash = CashPresenter(ctx)
    refund = RefundPresenter(ctx, router)
    parked = ParkedPresenter(ctx, cart)
    staff_status = StaffStatusPresenter(ctx)
    help_calls = HelpCallsPresenter(ctx)
    shift = ShiftState(ctx)
    drawer_watch = DrawerWatch(ctx)
    shift_open = ShiftOpenPresenter(ctx, shift)
    report = ReportPresenter(ctx, shift)
    shift_close = ShiftClosePresenter(ctx, shift, report)
    cash_moves = CashMovesPresenter(ctx, shift)
    void = VoidPresenter(ctx)
    reprint = ReprintPresenter(ctx, router, shift)
    sounds.listen_after(ctx.bus)  # ...and after they all have: did the cart take it?
    return Presenters(
        cart=cart,
        router=router,
        staff_check=staff_check,
        browse=browse,
        age_check=age_check,
        bagging=bagging,
        help=HelpPresenter(ctx),
        payment=payment,
        receipt=receipt,
        idle=idle,
        lock_notice=lock_notice,
        out_of_order=out_of_order,
        staff_access=staff_access,
        staff_login=staff_login,
        till=till,
        cash=cash,
        refund=refund,
        parked=parked,
        staff_status=staff_status,
        help_calls=help_calls,
        shift=shift,
        drawer_watch=drawer_watch,
        shift_open=shift_open,
        shift_close=shift_close,
        cash_moves=cash_moves,
        report=report,
        void=void,
        reprint=reprint,
        scan_sounds=sounds,
        pictures=PictureLoader(ctx.bus),
    )


def running_presenters() -> Presenters:
    """The running app's presenters, typed for a view's Python (its `.kv` says `app.<name>`)."""
    presenters: Presenters = App.get_running_app().presenters
    return presenters

// SPDX-License-Identifier: GPL-2.0
/*
 * appliance_tryboot: `reboot "0 tryboot"` sets the Raspberry Pi firmware's tryboot flag.
 *
 * The firmware boots the [tryboot] section of autoboot.txt once when its one-shot reboot
 * flag is set. The Raspberry Pi kernel sets that flag from a reboot notifier when the reboot
 * command holds " tryboot" (drivers/firmware/raspberrypi.c, rpi_firmware_notify_reboot, in
 * github.com/raspberrypi/linux). Debian's kernel is mainline and has no such notifier, so an
 * update's try boot would start the old slot again. This module is that notifier, with the
 * same mailbox call; the firmware driver itself still tells the firmware of the reboot when
 * it shuts down, after the notifiers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/of.h>
#include <linux/reboot.h>
#include <linux/string.h>
#include <soc/bcm2835/raspberrypi-firmware.h>

/* The firmware's property tag for its reboot flags, and the one flag it knows. */
#define APPLIANCE_SET_REBOOT_FLAGS 0x00038064
#define APPLIANCE_REBOOT_FLAG_TRYBOOT 0x1

static struct rpi_firmware *find_firmware(void)
{
	struct device_node *node;
	struct rpi_firmware *firmware;

	node = of_find_compatible_node(NULL, NULL, "raspberrypi,bcm2835-firmware");
	if (!node)
		return NULL;
	firmware = rpi_firmware_get(node);
	of_node_put(node);
	return firmware;
}

static int tryboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct rpi_firmware *firmware;
	u32 flags = APPLIANCE_REBOOT_FLAG_TRYBOOT;
	int ret;

	if (action != SYS_RESTART || !data || !strstr(data, " tryboot"))
		return NOTIFY_DONE;
	/* Looked up now, not at load: the firmware driver may probe after this module loads. */
	firmware = find_firmware();
	if (!firmware) {
		pr_warn("tryboot asked, but no Raspberry Pi firmware is here: the next boot is a normal one\n");
		return NOTIFY_DONE;
	}
	ret = rpi_firmware_property(firmware, APPLIANCE_SET_REBOOT_FLAGS, &flags, sizeof(flags));
	rpi_firmware_put(firmware);
	if (ret)
		pr_err("tryboot asked, but the firmware refused its flag (%d): the next boot is a normal one\n",
		       ret);
	else
		pr_info("tryboot asked: the firmware's flag is set, the next boot tries the other slot once\n");
	return NOTIFY_DONE;
}

static struct notifier_block tryboot_notifier = {
	.notifier_call = tryboot_notify,
};

static int __init appliance_tryboot_init(void)
{
	pr_info("passes reboot \"0 tryboot\" to the Raspberry Pi firmware\n");
	return register_reboot_notifier(&tryboot_notifier);
}

static void __exit appliance_tryboot_exit(void)
{
	unregister_reboot_notifier(&tryboot_notifier);
}

module_init(appliance_tryboot_init);
module_exit(appliance_tryboot_exit);
MODULE_DESCRIPTION("reboot \"0 tryboot\" sets the Raspberry Pi firmware's tryboot flag");
MODULE_LICENSE("GPL");

# iotlib: the device's connectivity, security, configuration and logging managers.
# Names load on first use (`from iotlib import ConfigManager`), so a board pays RAM only
# for the managers it touches.
_WHERE = {
    "request": "http_client",
    "HTTPError": "http_client",
    "Logger": "logger",
    "NetworkManager": "network_manager",
    "AuthManager": "auth_manager",
    "ConfigManager": "config_manager",
    "WatchdogManager": "watchdog_manager",
    "StateManager": "state_manager",
    "RelayGPIOManager": "relay_gpio_manager",
    "TimeSyncManager": "time_sync_manager",
    "AlarmManager": "alarm_manager",
    "OTAUpdateManager": "ota_update_manager",
}


def __getattr__(name):
    mod = _WHERE.get(name)
    try:
        if mod is None:  # `from iotlib import logger` asks here first on MicroPython
            return __import__("iotlib." + name, None, None, ("*",))
        return getattr(__import__("iotlib." + mod, None, None, (name,)), name)
    except ImportError:
        raise AttributeError(name)

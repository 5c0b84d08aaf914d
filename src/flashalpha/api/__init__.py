"""The daemon's HTTP side: REST (routes), the SignalR market hub (hub, signalr), metrics, the UI.

`ApiService` (service.py) runs it inside the daemon, on the daemon's loop.
"""

"""tcpinc-analyze: dissect, analyse and decrypt TCP-ENO and tcpcrypt traffic."""

__version__ = "0.1.0"

"""One-line causes for what paho and the socket layer report (TLS,
refused, DNS, PUBACK reason codes), for logs an operator can act on."""

import socket
import ssl


def describe_connect_error(exc):
    """One line naming the cause of a failed connect (TLS, refused, DNS)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls: broker certificate not trusted (%s): check mqtt.ca" % exc.verify_message
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        hint = ""
        if "CERTIFICATE" in str(reason).upper() or "UNKNOWN_CA" in str(reason).upper():
            hint = ": the broker refused our client certificate (expired, or not from the fleet CA?)"
        return "tls: %s%s" % (reason, hint)
    if isinstance(exc, ConnectionRefusedError):
        return "refused: nothing listening (broker down?)"
    if isinstance(exc, socket.gaierror):
        return "dns: %s" % exc
    if isinstance(exc, OSError):
        return "network: %s" % (exc.strerror or exc)
    return "%s: %s" % (type(exc).__name__, exc)


def describe_socket_error(text):
    """Name the cause in paho's socket error text (TLS alerts come after the
    handshake in TLS 1.3: the broker refusing our certificate shows here)."""
    up = text.upper()
    if "SSL" in up or "ALERT" in up or "CERTIFICATE" in up:
        if "EXPIRED" in up:
            hint = "our client certificate has expired: renew it (daozhang pki device)"
        elif "UNKNOWN_CA" in up or "BAD_CERTIFICATE" in up or "CERTIFICATE_REQUIRED" in up \
                or "UNSUPPORTED_CERTIFICATE" in up:
            hint = "the broker refused our client certificate (not issued by the fleet CA?)"
        elif "REVOKED" in up:
            hint = "our client certificate is revoked"
        else:
            hint = "TLS failure"
        return "tls: %s (%s)" % (text, hint)
    return "network: " + text


def puback_ok(reason):
    """A PUBACK reason code that means the broker accepted the message:
    0x00 success or 0x10 no matching subscribers (MQTT 5, 3.4.2.1).  Neither
    means it is stored (only the backend's ack says so); a failure (0x80 and
    up, e.g. 0x87 not authorised: the ACL) is final for that message."""
    value = getattr(reason, "value", reason)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return not getattr(reason, "is_failure", False)
    return value < 0x80

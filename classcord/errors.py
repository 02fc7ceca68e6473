"""Every error the server raises on purpose, in one tree split by whose fault it is.

The blame decides what happens, so it is the first level of the tree::

    ClassCordError
    ├── ClientError            a client's mistake: one error line, the session goes on
    │   └── RecipientUnavailable   a private message to nobody online (a legacy
    │                              client gets it as a private notice from Serveur)
    ├── AbuseError             a limit breached by abuse: the connection is closed,
    │                          the log says why
    ├── OperatorError          the person running the server got something wrong:
    │   │                      one line on stderr or in the reply, no traceback
    │   ├── SettingsError      an invalid setting (exit code 2)
    │   ├── StorageError       the database cannot be opened or used
    │   │   └── DataFolderBusy another server holds the data folder's lock
    │   ├── AdminError         a wrong admin request (answered on the admin socket)
    │   │   └── ImpostorSocket the admin socket is another user's, not our server's
    │   └── LegacyImportError  a users.pkl that is not a plain dict of strings
    ├── HashBusy               no room for another password hash: answered at once
    │                          (a login fails, a registration gets an error line)
    ├── Interrupted            SIGTERM arrived during a one-shot command (backup)
    └── InternalError          our bug, caught by a check of our own (a state change
                               the table does not allow)

A bug on our side, an InternalError or any exception outside the tree, is logged
with its traceback and the client gets a generic error line
(``texts.INTERNAL_ERROR``), never internals.
"""

from __future__ import annotations


class ClassCordError(Exception):
    """Root of every error the server raises on purpose."""


class ClientError(ClassCordError):
    """A client's mistake: answered with an error line, the session goes on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RecipientUnavailable(ClientError):
    """A private message whose recipient is offline or unknown."""


class AbuseError(ClassCordError):
    """A limit breached by abuse: the connection is closed and the reason logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OperatorError(ClassCordError):
    """A mistake of whoever runs the server: reported in one line, no traceback."""


class SettingsError(OperatorError, ValueError):
    """An invalid setting: reported in one line, exit code 2."""


class StorageError(OperatorError):
    """The database cannot be opened or used (permissions, corruption, full disk)."""


class AdminError(OperatorError):
    """A wrong admin request: reported to the admin, the server goes on."""


class LegacyImportError(OperatorError):
    """The pickle is not a plain dict of strings; nothing was imported."""


class Interrupted(ClassCordError):
    """SIGTERM arrived during a one-shot command: stop, leave no partial file."""


class InternalError(ClassCordError):
    """Our bug, caught by one of our own checks: logged with its traceback."""


class DataFolderBusy(StorageError):
    """Another server holds the data folder's lock."""


class ImpostorSocket(AdminError):
    """The admin socket belongs to, or is served by, another user: not our server."""


class HashBusy(ClassCordError):
    """No room for another hash: answered without hashing (a login becomes
    LoginOutcome.BUSY, a registration ClientError(HASH_BUSY))."""

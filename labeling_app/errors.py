"""The labeling app's exceptions:

    AlignError (foundation.errors)
     └── LabelingError          anything the store refuses; the message says what to do
          ├── NotAssignedError  a label for a pair that is not assigned to that labeler
          ├── AuthError         unknown user, wrong password, or a role that may not do this
          └── StorageError      the store cannot write now (disk full, I/O error): retry later
"""

from foundation.errors import AlignError


class LabelingError(AlignError):
    pass


class NotAssignedError(LabelingError):
    pass


class AuthError(LabelingError):
    pass


class StorageError(LabelingError):
    pass

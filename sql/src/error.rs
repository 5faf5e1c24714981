//! Errors, each with PostgreSQL's SQLSTATE.
//!
//! Every error a statement can end with carries the five-character code a
//! PostgreSQL client would get for the same mistake (the PostgreSQL
//! protocol issue sends it as is; drivers and `pgbench --max-tries` decide
//! on it: 40001 means "run the transaction again"), a message for people,
//! and, where the mistake is in the statement's text, the position of the
//! offending token (1-based, in characters, as PostgreSQL reports it).

use std::fmt;

/// The SQLSTATE classes SpanDB raises (PostgreSQL's Appendix A names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlState {
    /// 0A000
    FeatureNotSupported,
    /// 21000
    CardinalityViolation,
    /// 22001
    StringDataRightTruncation,
    /// 22003
    NumericValueOutOfRange,
    /// 22007
    InvalidDatetimeFormat,
    /// 22008
    DatetimeFieldOverflow,
    /// 22009
    InvalidTimeZoneDisplacementValue,
    /// 22012
    DivisionByZero,
    /// 2201G
    InvalidArgumentForWidthBucket,
    /// 22023
    InvalidParameterValue,
    /// 2200H: `nextval` past a sequence's end.
    SequenceGeneratorLimitExceeded,
    /// 2201W
    InvalidRowCountInLimitClause,
    /// 2201X
    InvalidRowCountInResultOffsetClause,
    /// 22P02
    InvalidTextRepresentation,
    /// 22P03
    InvalidBinaryRepresentation,
    /// 22P05: a character text cannot hold (`\u0000` in jsonb).
    UntranslatableCharacter,
    /// 22025
    InvalidEscapeSequence,
    /// 23502
    NotNullViolation,
    /// 23505
    UniqueViolation,
    /// 23514
    CheckViolation,
    /// 428C9: a value for a GENERATED ALWAYS column.
    GeneratedAlways,
    /// 23503
    ForeignKeyViolation,
    /// 42830: a foreign key whose referenced columns are not a unique key.
    InvalidForeignKey,
    /// 2BP01: a drop that would leave a dependent object (a foreign key)
    /// dangling.
    DependentObjectsStillExist,
    /// 25001
    ActiveSqlTransaction,
    /// 25006
    ReadOnlySqlTransaction,
    /// 25P01
    NoActiveSqlTransaction,
    /// 25P02
    InFailedSqlTransaction,
    /// 3B001: no savepoint of that name.
    InvalidSavepointSpecification,
    /// 42P19: a recursive query's reference to itself where it may not be.
    InvalidRecursion,
    /// 40001
    SerializationFailure,
    /// 40003: the commit's outcome is unknown.
    StatementCompletionUnknown,
    /// 40P01
    DeadlockDetected,
    /// 42601
    SyntaxError,
    /// 42701
    DuplicateColumn,
    /// 42702
    AmbiguousColumn,
    /// 42703
    UndefinedColumn,
    /// 42704
    UndefinedObject,
    /// 3F000
    InvalidSchemaName,
    /// 26000
    InvalidSqlStatementName,
    /// 2201B
    InvalidRegularExpression,
    /// 42710
    DuplicateObject,
    /// 42P05
    DuplicatePreparedStatement,
    /// 54023
    TooManyArguments,
    /// 42712
    DuplicateAlias,
    /// 42P01
    UndefinedTable,
    /// 42P07
    /// 42P06
    DuplicateSchema,
    DuplicateTable,
    /// 42P10
    InvalidColumnReference,
    /// 42803
    GroupingError,
    /// 42P20: a window function where none may be, a frame that cannot be.
    WindowingError,
    /// 22004
    NullValueNotAllowed,
    /// 22013: a negative frame offset.
    InvalidPrecedingOrFollowingSize,
    /// 22014
    InvalidArgumentForNtileFunction,
    /// 22016
    InvalidArgumentForNthValueFunction,
    /// 42804
    DatatypeMismatch,
    /// 42883
    UndefinedFunction,
    /// 42P18
    IndeterminateDatatype,
    /// 42846
    CannotCoerce,
    /// 42725
    AmbiguousFunction,
    /// 42P02
    UndefinedParameter,
    /// 42809
    WrongObjectType,
    /// 42P16
    InvalidTableDefinition,
    /// 54000
    ProgramLimitExceeded,
    /// 55006
    ObjectInUse,
    /// 53200
    OutOfMemory,
    /// 57014
    QueryCanceled,
    /// 57P01: the session was ended (`pg_terminate_backend`).
    AdminShutdown,
    /// 42P03: DECLARE of a cursor name already declared.
    DuplicateCursor,
    /// 34000: FETCH or CLOSE of a cursor not declared.
    InvalidCursorName,
    /// 55P03: a lock not granted within `lock_timeout`.
    LockNotAvailable,
    /// 55000: `currval` before any `nextval` in the session.
    ObjectNotInPrerequisiteState,
    /// 22P04: COPY data of the wrong shape.
    BadCopyFileFormat,
    /// 22021: bytes that are not UTF-8.
    CharacterNotInRepertoire,
    /// 08006
    ConnectionFailure,
    /// 08P01: a message that breaks the protocol (a Bind with the wrong
    /// number of parameters, a parameter that does not decode).
    ProtocolViolation,
    /// 53300
    TooManyConnections,
    /// 58000: the storage below failed (unavailable, timed out).
    SystemError,
    /// XX000
    InternalError,
}

impl SqlState {
    /// The five-character code.
    pub fn code(self) -> &'static str {
        use SqlState::*;
        match self {
            FeatureNotSupported => "0A000",
            CardinalityViolation => "21000",
            StringDataRightTruncation => "22001",
            NumericValueOutOfRange => "22003",
            InvalidDatetimeFormat => "22007",
            DatetimeFieldOverflow => "22008",
            InvalidTimeZoneDisplacementValue => "22009",
            DivisionByZero => "22012",
            InvalidArgumentForWidthBucket => "2201G",
            InvalidParameterValue => "22023",
            SequenceGeneratorLimitExceeded => "2200H",
            InvalidRowCountInLimitClause => "2201W",
            InvalidRowCountInResultOffsetClause => "2201X",
            InvalidTextRepresentation => "22P02",
            InvalidBinaryRepresentation => "22P03",
            UntranslatableCharacter => "22P05",
            InvalidEscapeSequence => "22025",
            NotNullViolation => "23502",
            UniqueViolation => "23505",
            CheckViolation => "23514",
            GeneratedAlways => "428C9",
            ForeignKeyViolation => "23503",
            InvalidForeignKey => "42830",
            DependentObjectsStillExist => "2BP01",
            ActiveSqlTransaction => "25001",
            ReadOnlySqlTransaction => "25006",
            NoActiveSqlTransaction => "25P01",
            InFailedSqlTransaction => "25P02",
            InvalidSavepointSpecification => "3B001",
            InvalidRecursion => "42P19",
            SerializationFailure => "40001",
            StatementCompletionUnknown => "40003",
            DeadlockDetected => "40P01",
            SyntaxError => "42601",
            DuplicateColumn => "42701",
            AmbiguousColumn => "42702",
            UndefinedColumn => "42703",
            UndefinedObject => "42704",
            InvalidSchemaName => "3F000",
            InvalidSqlStatementName => "26000",
            InvalidRegularExpression => "2201B",
            DuplicateObject => "42710",
            DuplicatePreparedStatement => "42P05",
            TooManyArguments => "54023",
            DuplicateAlias => "42712",
            UndefinedTable => "42P01",
            DuplicateSchema => "42P06",
            DuplicateTable => "42P07",
            InvalidColumnReference => "42P10",
            GroupingError => "42803",
            WindowingError => "42P20",
            NullValueNotAllowed => "22004",
            InvalidPrecedingOrFollowingSize => "22013",
            InvalidArgumentForNtileFunction => "22014",
            InvalidArgumentForNthValueFunction => "22016",
            DatatypeMismatch => "42804",
            UndefinedFunction => "42883",
            IndeterminateDatatype => "42P18",
            CannotCoerce => "42846",
            AmbiguousFunction => "42725",
            UndefinedParameter => "42P02",
            WrongObjectType => "42809",
            InvalidTableDefinition => "42P16",
            ProgramLimitExceeded => "54000",
            ObjectInUse => "55006",
            OutOfMemory => "53200",
            QueryCanceled => "57014",
            AdminShutdown => "57P01",
            DuplicateCursor => "42P03",
            InvalidCursorName => "34000",
            LockNotAvailable => "55P03",
            ObjectNotInPrerequisiteState => "55000",
            BadCopyFileFormat => "22P04",
            CharacterNotInRepertoire => "22021",
            ConnectionFailure => "08006",
            ProtocolViolation => "08P01",
            TooManyConnections => "53300",
            SystemError => "58000",
            InternalError => "XX000",
        }
    }

    /// Whether running the whole transaction again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, SqlState::SerializationFailure | SqlState::DeadlockDetected)
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A statement's failure, as a PostgreSQL client would see it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub state: SqlState,
    pub message: String,
    /// Extra facts (PostgreSQL's DETAIL), e.g. the conflicting key.
    pub detail: Option<String>,
    /// 1-based character position in the statement's text, if the error
    /// is about a token of it.
    pub position: Option<usize>,
    /// What to do about it (PostgreSQL's HINT).
    pub hint: Option<String>,
}

impl Error {
    pub fn new(state: SqlState, message: impl Into<String>) -> Error {
        Error { state, message: message.into(), detail: None, position: None, hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    pub fn at(mut self, position: usize) -> Error {
        if self.position.is_none() {
            self.position = Some(position);
        }
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.state.is_retryable()
    }
}

/// `Err(Error::new(SqlState::X, format!(...)))` in one line.
#[macro_export]
macro_rules! sql_err {
    ($state:ident, $($arg:tt)*) => {
        Err($crate::error::Error::new($crate::error::SqlState::$state, format!($($arg)*)))
    };
}

pub type Result<T> = std::result::Result<T, Error>;

// Named, coded errors of the control plane; the API maps them to HTTP.
export class StoreError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** The object does not exist, or belongs to another tenant (never say which). */
export class NotFoundError extends StoreError {
  constructor(what: string) {
    super('not_found', `${what} not found`);
  }
}
export class ConflictError extends StoreError {
  constructor(message: string) {
    super('conflict', message);
  }
}
/** A value the database or a rule refuses; `field` names it. */
export class InvalidError extends StoreError {
  constructor(readonly field: string, message: string) {
    super('invalid', `${field}: ${message}`);
  }
}

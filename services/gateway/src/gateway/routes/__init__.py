"""One APIRouter per resource; routes only translate HTTP to gateway ops."""

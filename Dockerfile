# One image for the API, the dashboard, the migration job and the worker.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9 && useradd --create-home --uid 10001 coalition
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY api ./api
COPY shared ./shared
COPY dashboard ./dashboard
COPY .streamlit/config.toml ./.streamlit/config.toml
COPY seed ./seed
RUN uv sync --frozen --no-dev
USER coalition
EXPOSE 8000 8501
CMD ["uvicorn", "--factory", "api.app:app_factory", "--host", "0.0.0.0", "--port", "8000"]
